// Package mtls builds the TLS configurations ppml workers use between
// each other: TLS 1.3 only, each side presenting its workload certificate
// (renewed under it, through a Source) and verifying the other's with
// workload.Trust — the chain to the deployment CA, validity, the CA's
// revocation list, and the identity extension's job digest, role and
// certificate policy. Host names play no part: a worker is who its
// attested identity says.
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/ppml/ppml/workload"
)

// Source gives the certificate to present: the newest one, so that a
// renewed certificate is used from the next handshake on
// (kms/client.Identity is one; Static another).
type Source interface {
	Certificate() (*tls.Certificate, error)
}

// Static is a Source of one certificate.
type Static struct{ Cert *tls.Certificate }

// Certificate implements Source.
func (s Static) Certificate() (*tls.Certificate, error) { return s.Cert, nil }

// Peer is what one side requires of the other.
type Peer struct {
	Trust  *workload.Trust
	Expect workload.Expect
	// Verified, when set, is told of each peer identity accepted (for logs).
	Verified func(id *workload.Identity, cert *x509.Certificate)
}

// verify checks the peer's chain as the connection state holds it.
// VerifyConnection runs on every handshake, resumed ones included (which
// VerifyPeerCertificate skips), so expiry and revocation are checked each
// time.
func (p *Peer) verify(cs tls.ConnectionState, usage x509.ExtKeyUsage) error {
	raw := make([][]byte, len(cs.PeerCertificates))
	for i, c := range cs.PeerCertificates {
		raw[i] = c.Raw
	}
	leaf, id, err := p.Trust.Verify(raw, usage, p.Expect)
	if err != nil {
		return err
	}
	if p.Verified != nil {
		p.Verified(id, leaf)
	}
	return nil
}

// ServerConfig is the configuration of the side that accepts: it presents
// src's certificate and requires a client certificate that peer accepts.
// nextProtos, when given, are the ALPN protocols it serves.
func ServerConfig(src Source, peer *Peer, nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return src.Certificate()
		},
		// The chain is checked by peer.verify against the deployment CA
		// only, not against ClientCAs (which would also accept any other
		// client certificate the CA issued, whatever its identity).
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return peer.verify(cs, x509.ExtKeyUsageClientAuth)
		},
		SessionTicketsDisabled: true,
		NextProtos:             nextProtos,
	}
}

// ClientConfig is the configuration of the side that dials: it presents
// src's certificate when asked and requires a server certificate that peer
// accepts. With nextProto set, it offers that ALPN protocol and the
// handshake fails unless the server chose it.
func ClientConfig(src Source, peer *Peer, nextProto string) *tls.Config {
	c := &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return src.Certificate()
		},
		// Host name verification does not apply (workers are named by
		// their identity extension); the chain and the identity are
		// verified below, which InsecureSkipVerify does not skip.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if nextProto != "" && cs.NegotiatedProtocol != nextProto {
				return errors.New("the peer does not serve " + nextProto)
			}
			return peer.verify(cs, x509.ExtKeyUsageServerAuth)
		},
	}
	if nextProto != "" {
		c.NextProtos = []string{nextProto}
	}
	return c
}

// BrokerConfig is the configuration of a worker dialing a message broker
// (Redis, NATS, Kafka) that supports TLS client certificates: TLS 1.3,
// src's workload certificate as the client certificate (renewed under it),
// and the broker's own certificate verified the ordinary way against
// roots for serverName — a broker runs outside the TEEs, so it has a
// server certificate of its operator's CA, not a workload identity.
//
// The broker is configured to require client certificates issued by the
// deployment CA (Redis: tls-ca-cert-file and tls-auth-clients yes; NATS:
// tls { ca_file, verify: true }; Kafka: ssl.client.auth=required with the
// CA in the truststore). A broker checks the chain only: not the job,
// role or revocation list, which the short certificate lifetime bounds
// (docs/cluster.md, "Message brokers").
func BrokerConfig(src Source, roots *x509.CertPool, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		RootCAs:    roots,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return src.Certificate()
		},
	}
}
