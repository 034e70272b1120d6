"""ppml: read and write ppml-protected data from Python.

The Python counterpart of the ppml CLI and Go packages, speaking the same formats and
protocols (docs/python.md):

- envelopes: ``ppml.open(path, keys=...)``, ``ppml.create(path, key=..., content_type=...)``,
  ``ppml.encrypt_file``, ``ppml.decrypt_file``, ``ppml.inspect``; keys are ``LocalKey``
  (key files), ``KMSKey`` (``kms://`` keys at the key service), ``RecipientIdentity`` (a
  recipient's private key file) or key file paths and ``kms://`` strings; ``create(path,
  recipient=...)`` encrypts to a public key (``Recipient``, ``ppml1…`` text or ``.pub`` file);
- DataFrames: ``ppml.read_csv``, ``read_json``, ``to_csv``, ``to_json`` (pandas), and
  ``read_parquet`` / ``to_parquet`` through the ``ppml`` CLI;
- the key service: ``ppml.KeyService``; the audit log: ``ppml.audit``;
- jobs: ``ppml.job.digest(manifest)``, ``ppml.run(...)``; inside an exec job
  ``ppml.inputs()`` and ``ppml.outputs()``;
- serving: ``ppml.serving.Queue`` puts requests into a serve job's Cluster Serving queue and
  reads the results, sealed as serving records (Arrow streams by ``ppml.arrowipc``).

Attributes are imported on first use, so ``import ppml`` inside a job loads only what the job
touches (``ppml.inputs()`` needs nothing but the standard library).
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "open": ("envelope", "open"),
    "create": ("envelope", "create"),
    "encrypt_file": ("envelope", "encrypt_file"),
    "decrypt_file": ("envelope", "decrypt_file"),
    "inspect": ("envelope", "inspect"),
    "EnvelopeFile": ("reader", "EnvelopeFile"),
    "EnvelopeStream": ("reader", "EnvelopeStream"),
    "EnvelopeWriter": ("writer", "EnvelopeWriter"),
    "Header": ("header", "Header"),
    "KeyRef": ("keyref", "KeyRef"),
    "parse_key_ref": ("keyref", "parse"),
    "LocalKey": ("keys", "LocalKey"),
    "KMSKey": ("keys", "KMSKey"),
    "Recipient": ("recipient", "Recipient"),
    "RecipientIdentity": ("recipient", "RecipientIdentity"),
    "Keyring": ("keys", "Keyring"),
    "KeyService": ("kms", "KeyService"),
    "read_csv": ("frames", "read_csv"),
    "read_json": ("frames", "read_json"),
    "to_csv": ("frames", "to_csv"),
    "to_json": ("frames", "to_json"),
    "read_parquet": ("frames", "read_parquet"),
    "to_parquet": ("frames", "to_parquet"),
    "inputs": ("jobenv", "inputs"),
    "outputs": ("jobenv", "outputs"),
    "run": ("job", "run"),
    "PPMLError": ("errors", "PPMLError"),
    "EnvelopeError": ("errors", "EnvelopeError"),
    "NotEnvelopeError": ("errors", "NotEnvelopeError"),
    "EmptyFileError": ("errors", "EmptyFileError"),
    "UnsupportedError": ("errors", "UnsupportedError"),
    "CorruptHeaderError": ("errors", "CorruptHeaderError"),
    "WrongKeyError": ("errors", "WrongKeyError"),
    "TruncatedError": ("errors", "TruncatedError"),
    "TrailingDataError": ("errors", "TrailingDataError"),
    "AuthenticationError": ("errors", "AuthenticationError"),
    "KeyFileError": ("errors", "KeyFileError"),
    "KeyServiceError": ("errors", "KeyServiceError"),
    "VerificationError": ("errors", "VerificationError"),
    "AuditTamperError": ("errors", "AuditTamperError"),
    "ManifestError": ("errors", "ManifestError"),
    "CommandError": ("errors", "CommandError"),
}

_SUBMODULES = {"audit", "job", "errors", "keyref", "keys", "kms", "frames", "jobenv", "bench", "merkle", "jcs",
               "header", "reader", "writer", "envelope", "atomic", "cli", "recipient", "hpke",
               "serving", "arrowipc"}

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES)


def __getattr__(name):
    if name in _EXPORTS:
        mod, attr = _EXPORTS[name]
        value = getattr(importlib.import_module("." + mod, __name__), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'ppml' has no attribute {name!r}")


def __dir__():
    return __all__
