"""The one exception of the sandbox's own (non-LiveKit) admin API."""


class SandboxError(Exception):
    """A sandbox admin operation was refused; `status` is the HTTP status the admin API answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
