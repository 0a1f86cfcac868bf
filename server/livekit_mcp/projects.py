"""Projects: the LiveKit deployments one server serves, named as `lk` names them.

Where they come from, read once at start:
- `lk`'s own file, ~/.livekit/cli-config.yaml (`default_project`, `projects` of `name`, `url`, `api_key`,
  `api_secret`), read as livekit-cli's `config.LoadOrCreate` reads it: a missing file is no projects, a file
  others may read gets ssh's warning, names are matched exactly;
- `[[projects]]` tables of the --config file: a project of its own (`name`, `url`, `api_key` and `api_secret_env`,
  the environment variable holding its secret: never the secret itself), or, with only a `name`, the policy of a
  project `lk` knows;
- `LIVEKIT_URL`/`LIVEKIT_API_KEY`/`LIVEKIT_API_SECRET` (or --dev): one project without a name.

The default is `--project`/`LIVEKIT_MCP_PROJECT`, else the unnamed project, else `lk`'s `default_project`, else
the only project there is: the order `lk` itself follows (flag, then inline credentials, then its default).

Each project has its own LiveKit connection (its own timeout and limits, so one that is down slows no other) and
its own policy and guard. A request acts on one of them, chosen with the rest of its scope (scope.py).
"""

from __future__ import annotations

import logging
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from livekit_mcp.config import DEV_API_KEY, DEV_API_SECRET, DEV_URL, KINDS, Settings, url_problem
from livekit_mcp.errors import InvalidInput, ProjectsError
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.policy import Policy
from livekit_mcp.text import shown, unseen

if TYPE_CHECKING:
    from yaml import SafeLoader

    from livekit_mcp.confirm import Guard

log = logging.getLogger(__name__)

NAME = re.compile(r"[a-zA-Z0-9_\-]+")
"""The names `lk project add` accepts (livekit-cli cmd/lk/project.go `nameRegex`)."""
POLICY_FIELDS = ("read_only", "allowed_rooms", "protected_rooms", "protected_kinds", "max_destructive_per_minute")
TOML_FIELDS = ("name", "url", "api_key", "api_secret_env", *POLICY_FIELDS)


@dataclass(frozen=True)
class ProjectSpec:
    """One project as configured: where it is, its credentials, and its policy (None: the global setting)."""

    name: str
    """As `lk` knows it; "" for the unnamed project of LIVEKIT_URL/LIVEKIT_API_KEY/LIVEKIT_API_SECRET or --dev."""
    url: str
    api_key: str
    api_secret: SecretStr = field(repr=False)
    source: str
    """Where it was declared (a file, "environment", "--dev", "--sandbox"), for list_projects and errors."""
    policy: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"project '{self.name}'" if self.name else "the project of LIVEKIT_URL"


# --- Reading them --------------------------------------------------------------------------------------


_warned: set[Path] = set()
"""Files already warned about: the projects are read more than once at start (the command line, then the server)."""


def _as_text() -> type[SafeLoader]:
    """A loader reading every scalar as the text it is: what yaml.v3 does decoding into lk's string fields
    (`api_key: 12345` is the key "12345", `name: on` the name "on", not a number or a boolean)."""
    import yaml

    class AsText(yaml.SafeLoader):
        pass

    AsText.yaml_implicit_resolvers = {}
    return AsText


def read_lk_file(path: Path) -> tuple[list[ProjectSpec], str]:
    """The projects of `lk`'s file and its default_project; no file is no projects, as for `lk`."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return [], ""
    except OSError as exc:
        raise ProjectsError(f"cannot read {path}: {exc.strerror}") from None
    if stat.S_ISREG(mode) and stat.S_IMODE(mode) & 0o077 and path not in _warned:
        # lk's own warning: the file holds API secrets, so only its owner should be able to read it.
        _warned.add(path)
        log.warning("config file %s should have permissions 600 (it holds API secrets; chmod 600 it)", path)
    import yaml  # only when there is a file: most starts have none, and PyYAML costs the first answer ~20 ms

    try:
        data = yaml.load(path.read_text(), Loader=_as_text())  # noqa: S506 - a SafeLoader, no type resolution
    except OSError as exc:
        raise ProjectsError(f"cannot read {path}: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ProjectsError(f"{path} is not YAML lk can read{line}: {getattr(exc, 'problem', None) or exc}") from None
    if data is None or data == "":
        return [], ""
    if not isinstance(data, dict):
        raise ProjectsError(f"{path}: expected lk's default_project and projects, found a {type(data).__name__}")
    entries = data.get("projects") or []
    if not isinstance(entries, list):
        raise ProjectsError(f"{path}: projects is not a list")
    specs = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise ProjectsError(f"{path}: projects entry {number} is not a table of name, url, api_key, api_secret")
        specs.append(_lk_entry(path, number, entry))
    _no_duplicates(specs)
    default = data.get("default_project")
    return specs, default if isinstance(default, str) and default not in ("~", "null") else ""


def _text(value: object) -> str:
    return "" if value is None or value in ("~", "null") else str(value).strip()


def _lk_entry(path: Path, number: int, entry: Mapping[str, Any]) -> ProjectSpec:
    name = _text(entry.get("name"))
    if found := unseen(name):
        # A bidi override or a newline would make the name read as another's wherever it is shown (the audit log,
        # tools/list's enum, errors): refused, naming the characters without printing them.
        raise ProjectsError(
            f"{path}: projects entry {number}: its name holds control or format characters ({found}); "
            "rename it to letters, digits, - and _ (as `lk project add` takes)"
        )
    where = f"{path}: project '{name}' (entry {number})" if name else f"{path}: projects entry {number}"
    if not name:
        raise ProjectsError(f"{where} has no name")
    url, key, secret = (_text(entry.get(k)) for k in ("url", "api_key", "api_secret"))
    missing = [k for k, v in (("url", url), ("api_key", key), ("api_secret", secret)) if not v]
    if missing:
        raise ProjectsError(f"{where} has no {' and no '.join(missing)}; `lk project add` sets them")
    try:
        url_problem(url, "its url")
    except ValueError as exc:
        raise ProjectsError(f"{where}: {exc}") from None
    return ProjectSpec(name, url, key, SecretStr(secret), str(path))


def toml_projects(settings: Settings, known: Sequence[ProjectSpec]) -> list[ProjectSpec]:
    """`known` with the [[projects]] of the --config file: new projects added, and policy set on `lk`'s."""
    path = settings.config_path or Path("--config")
    by_name = {p.name: p for p in known}
    added: list[ProjectSpec] = []
    for number, entry in enumerate(settings.projects, start=1):
        name = entry.get("name")
        where = f"{path}: [[projects]] '{name}' (entry {number})" if name else f"{path}: [[projects]] entry {number}"
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ProjectsError(f"{where}: name must be letters, digits, - and _ (as `lk project add` takes)")
        unknown = sorted(set(entry) - set(TOML_FIELDS))
        if "api_secret" in unknown:
            raise ProjectsError(
                f"{where}: api_secret is never written here; set api_secret_env to the environment variable holding it"
            )
        if unknown:
            raise ProjectsError(f"{where}: unknown field {', '.join(unknown)}; fields: {', '.join(TOML_FIELDS)}")
        policy = _policy_of(where, entry)
        if "url" not in entry and "api_key" not in entry and "api_secret_env" not in entry:
            if name not in by_name:  # a policy for a project that does not exist
                raise ProjectsError(f"{where}: no project of that name (known: {_names(known) or 'none'})")
            spec = by_name[name]
            by_name[name] = ProjectSpec(spec.name, spec.url, spec.api_key, spec.api_secret, spec.source, policy)
            continue
        if name in by_name or any(p.name == name for p in added):
            other = by_name[name].source if name in by_name else str(path)
            raise ProjectsError(f"{where}: a project '{name}' is already declared in {other}")
        added.append(_toml_entry(settings, where, str(path), entry, policy))
    return [*by_name.values(), *added]


def _toml_entry(
    settings: Settings, where: str, source: str, entry: Mapping[str, Any], policy: Mapping[str, Any]
) -> ProjectSpec:
    url, key, secret_env = (entry.get(k) for k in ("url", "api_key", "api_secret_env"))
    missing = [k for k, v in (("url", url), ("api_key", key), ("api_secret_env", secret_env)) if not v]
    if missing:
        raise ProjectsError(f"{where} has no {' and no '.join(missing)}")
    if not all(isinstance(v, str) for v in (url, key, secret_env)):
        raise ProjectsError(f"{where}: url, api_key and api_secret_env are strings")
    try:
        url_problem(str(url), "its url")
    except ValueError as exc:
        raise ProjectsError(f"{where}: {exc}") from None
    secret = settings.env_secret(str(secret_env))
    if secret is None:
        raise ProjectsError(f"{where}: api_secret_env names {secret_env}, which is not set in the environment")
    return ProjectSpec(str(entry["name"]), str(url), str(key), secret, source, policy)


def _policy_of(where: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The policy fields an entry sets, checked like the global settings of the same names."""
    policy = {k: entry[k] for k in POLICY_FIELDS if k in entry}
    for key in ("allowed_rooms", "protected_rooms", "protected_kinds"):
        value = policy.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise ProjectsError(f"{where}: {key} is a list of strings")
    kinds = [k.upper() for k in policy.get("protected_kinds", [])]
    if any(k not in KINDS for k in kinds):
        raise ProjectsError(f"{where}: protected_kinds: choose from {', '.join(KINDS)}")
    if "protected_kinds" in policy:
        policy["protected_kinds"] = kinds
    if "read_only" in policy and not isinstance(policy["read_only"], bool):
        raise ProjectsError(f"{where}: read_only is true or false")
    limit = policy.get("max_destructive_per_minute", 0)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= 10_000:
        raise ProjectsError(f"{where}: max_destructive_per_minute is a whole number from 0 to 10000")
    return policy


def _no_duplicates(specs: Sequence[ProjectSpec]) -> None:
    seen: set[str] = set()
    for number, spec in enumerate(specs, start=1):
        if spec.name in seen:
            raise ProjectsError(f"{spec.source}: project '{spec.name}' (entry {number}) is named twice; rename one")
        seen.add(spec.name)


def _names(specs: Sequence[ProjectSpec]) -> str:
    return ", ".join(p.name for p in specs if p.name)


def project_specs(settings: Settings) -> tuple[list[ProjectSpec], str]:
    """Every project to serve, and the default's name ("" for the unnamed one); ProjectsError if that cannot be.

    Not for --sandbox, whose projects exist only once its sandboxes run (see `sandbox_specs`)."""
    if settings.credentials == "dev":
        if settings.project is not None:  # silently ignored, it would act on another project than the one named
            raise ProjectsError(
                f"--project/LIVEKIT_MCP_PROJECT names '{settings.project}', but --dev is `lk --dev`'s project "
                "alone: give one or the other"
            )
        return [ProjectSpec("", DEV_URL, DEV_API_KEY, SecretStr(DEV_API_SECRET), "--dev")], ""
    lk_file = settings.lk_config_path()
    named, lk_default = read_lk_file(lk_file)
    named = toml_projects(settings, named)
    specs = list(named)
    if settings.project is None and (named == [] or settings.url or settings.api_key or settings.api_secret):
        # Inline credentials, as `lk` takes them when no --project names one: incomplete ones are an error.
        url, key, secret = settings.livekit_credentials()
        specs.insert(0, ProjectSpec("", url, key, secret, "environment"))
    if settings.project is not None:
        default = settings.project
        if default not in {p.name for p in named}:
            raise ProjectsError(
                f"--project/LIVEKIT_MCP_PROJECT names '{shown(default)}', which is not a project of {lk_file}"
                + (f" or {settings.config_path}" if settings.config_path else "")
                + f" (known: {_names(named) or 'none; add one with `lk project add`'})"
            )
    elif specs[0].name == "":
        default = ""
    elif lk_default:
        if lk_default not in {p.name for p in named}:
            raise ProjectsError(
                f"{lk_file}: default_project '{shown(lk_default)}' is not one of its projects ({_names(named)}); "
                "`lk project set-default NAME` sets another"
            )
        default = lk_default
    elif len(specs) == 1:
        default = specs[0].name
    else:
        raise ProjectsError(
            f"{len(specs)} projects ({_names(specs)}) and none is the default: "
            "`lk project set-default NAME`, or pass --project NAME"
        )
    return specs, default


# --- Serving them --------------------------------------------------------------------------------------


@dataclass
class Project:
    """A project being served: its connection, its policy, and the guard of its destructive tools."""

    spec: ProjectSpec
    livekit: LiveKit
    guard: Guard
    read_only: bool

    @property
    def name(self) -> str:
        return self.spec.name


def policy_for(spec: ProjectSpec, settings: Settings) -> Policy:
    """The project's policy: what its entry sets, the global setting for the rest."""
    own = spec.policy
    return Policy(
        allowed_rooms=own.get("allowed_rooms", settings.allowed_rooms),
        protected_rooms=own.get("protected_rooms", settings.protected_rooms),
        protected_kinds=own.get("protected_kinds", settings.protected_kinds),
        max_destructive_per_minute=own.get("max_destructive_per_minute", settings.max_destructive_per_minute),
    )


def read_only_for(spec: ProjectSpec, settings: Settings) -> bool:
    return bool(spec.policy.get("read_only", settings.read_only))


class Projects:
    """The projects of a running server, by name."""

    def __init__(self, projects: Sequence[Project], default: str) -> None:
        self._by_name = {p.name: p for p in projects}
        self.default = self._by_name[default]

    def __iter__(self) -> Iterator[Project]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str | None, allowed: frozenset[str] | None = None) -> Project:
        """The project of this name; the default for None or "". InvalidInput, listing the known ones (those in
        `allowed`, when the caller is limited to some: the others are not named to it), otherwise."""
        if not name:
            return self.default
        found = self._by_name.get(name)
        if found is None:
            known = ", ".join(repr(n) for n in self._by_name if n and (allowed is None or n in allowed))
            known = known or "none by name"
            raise InvalidInput(
                "project", f"no project '{name[:64]}' here; known: {known} (omit project for the default)"
            )
        return found
