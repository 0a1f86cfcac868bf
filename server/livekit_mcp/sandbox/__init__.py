"""The LiveKit sandbox: a RoomService, AgentDispatchService, SIP, Egress and Ingress emulator over real HTTP
(see README.md).

It speaks LiveKit's Twirp protocol (protobuf and JSON) with LiveKit's auth, grants, errors and rules, and
adds a sandbox-only admin API under /_sandbox/ to make participants join and to inject faults.
"""

from ._admin import SandboxAdmin
from ._errors import SandboxError
from ._faults import Fault
from ._server import Sandbox, serve_forever
from ._state import State

__all__ = ["Fault", "Sandbox", "SandboxAdmin", "SandboxError", "State", "serve_forever"]
