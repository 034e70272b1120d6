"""Exceptions of the ppml SDK.

Every envelope failure has its own class, one per error of the Go envelope package
(docs/formats/envelope.md, section 6), so ``except ppml.TruncatedError`` means what
``errors.Is(err, envelope.ErrTruncated)`` means in Go. ``kind`` is a stable name for each
class (the same names the cross-implementation tests compare with Go).
"""


class PPMLError(Exception):
    """Base class of every error the ppml SDK raises on purpose."""

    kind = "error"


class EnvelopeError(PPMLError):
    """A protected file (envelope) could not be read or written."""

    kind = "envelope"


class NotEnvelopeError(EnvelopeError):
    """The file is not a ppml envelope (Go: envelope.ErrNotEnvelope)."""

    kind = "not_envelope"


class EmptyFileError(NotEnvelopeError):
    """The file is empty (Go: envelope.ErrNotEnvelope, "the file is empty")."""


class UnsupportedError(EnvelopeError):
    """An envelope version, cipher suite or flag this reader does not know (Go: ErrUnsupported)."""

    kind = "unsupported"


class CorruptHeaderError(EnvelopeError):
    """The header is malformed or was modified (Go: envelope.ErrCorruptHeader)."""

    kind = "corrupt_header"


class WrongKeyError(EnvelopeError):
    """The file needs another key than the one(s) given (Go: envelope.ErrWrongKey).

    ``need`` is the key reference the file names, ``given`` describes what was offered.
    """

    kind = "wrong_key"

    def __init__(self, need, given):
        self.need = need
        self.given = given
        super().__init__(f"wrong key: the file needs {need.describe()}, but {given} was given")


class SegmentError(EnvelopeError):
    """Base of the errors found in the body; ``segment`` is the index, or None."""

    def __init__(self, message, segment=None):
        self.segment = segment
        super().__init__(message if segment is None else f"segment {segment}: {message}")


class TruncatedError(SegmentError):
    """The file was cut short (Go: envelope.ErrTruncated)."""

    kind = "truncated"


class TrailingDataError(SegmentError):
    """Bytes follow the final segment (Go: envelope.ErrTrailingData)."""

    kind = "trailing_data"


class AuthenticationError(SegmentError):
    """A segment did not authenticate: modified data, swapped or spliced segments, or the
    header of another file (Go: envelope.ErrAuth)."""

    kind = "auth"


class KeyFileError(PPMLError):
    """A local key file is malformed (Go: keyfile.ErrNotKeyFile)."""

    kind = "key_file"


class KeyServiceError(PPMLError):
    """The key service answered with an error (Go: client.StatusError).

    ``status`` is the HTTP status, ``code`` the API's stable error code (``not_found``,
    ``denied``, ...), ``denials`` the per-key refusals of a release.
    """

    kind = "key_service"

    def __init__(self, status, code, message, denials=None):
        self.status = status
        self.code = code
        self.message = message
        self.denials = denials or []
        super().__init__(f"key service: {status} {code}: {message}")


class VerificationError(PPMLError):
    """A signature, receipt, proof or audit export did not verify."""

    kind = "verification"


class AuditTamperError(VerificationError):
    """An audit export does not verify; ``problems`` lists every problem found, the most
    fundamental first, exactly as Go's audit.TamperError does."""

    kind = "audit_tamper"

    def __init__(self, problems):
        self.problems = list(problems)
        first = str(self.problems[0])
        if len(self.problems) == 1:
            msg = "audit log does not verify: " + first
        else:
            msg = f"audit log does not verify: {first} (and {len(self.problems) - 1} more problems)"
        super().__init__(msg)


class ManifestError(PPMLError):
    """A job manifest is invalid; ``problems`` holds the lines ppml printed."""

    kind = "manifest"

    def __init__(self, manifest, problems):
        self.manifest = manifest
        self.problems = list(problems)
        super().__init__(f"invalid job manifest {manifest}:\n  " + "\n  ".join(self.problems))


class CommandError(PPMLError):
    """A ``ppml`` command the SDK delegates to failed; ``stderr`` is what it printed."""

    kind = "command"

    def __init__(self, argv, returncode, stderr):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        msg = stderr.strip() or f"exit status {returncode}"
        super().__init__(f"{argv[0]} {argv[1] if len(argv) > 1 else ''}: {msg}".replace("  ", " "))
