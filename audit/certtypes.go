package audit

// Entry types of the workload certificate authority (docs/cluster.md,
// "Attested workload identity"). A certificate entry is on the trail of
// the tenant that owns the certificate policy; its Reason names the
// certificate policy and version, the role, the serial number and the
// lifetime, and its attestation fields say what was verified.
const (
	// TypeCACreate records the creation of the deployment CA, with the
	// SHA-256 fingerprint of its certificate: owners who pin the CA can
	// check the certificate they were given against the log.
	TypeCACreate Type = "ca_create"
	// TypeCertIssue is a workload certificate issued to an attested TEE.
	TypeCertIssue Type = "cert_issue"
	// TypeCertDenial is a refused certificate request, with the rule.
	TypeCertDenial Type = "cert_denial"
	// TypeCertPolicySet is a certificate policy created or replaced (a new
	// version); its Reason says how many certificates of older versions
	// were revoked.
	TypeCertPolicySet Type = "cert_policy_set"
	// TypeCertPolicyDelete is a certificate policy deleted; every
	// certificate issued under it is revoked.
	TypeCertPolicyDelete Type = "cert_policy_delete"
)
