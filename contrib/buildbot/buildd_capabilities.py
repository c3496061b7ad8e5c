"""Route Buildbot builds to buildd workers by capability.

A buildd worker reports what it offers (a PostgreSQL server, a private repository…) in
its worker info under the key ``capabilities``: a JSON string of the form::

    {"postgresql": {"version": "15.4", "properties": {"port": "5433"},
                    "available": true, "reason": ""}}

(secret properties are never in it). A plain Python buildbot-worker can publish the
same with a file ``info/capabilities`` holding that JSON.

In master.cfg::

    import buildd_capabilities as caps

    pg = caps.requires("postgresql >= 13", "private-repo")
    c['builders'].append(util.BuilderConfig(
        name="db-tests", workernames=["w1", "w2"], factory=factory,
        canStartBuild=pg,   # only on workers whose capabilities satisfy both
        env=pg.env,         # BUILDD_REQUIRES: the worker adds PGHOST, PGPASSWORD, …
    ))

A requirement is ``name`` or ``name OP version`` with OP one of ``<< <= = >= >>``
(``<`` and ``>`` mean the strict ``<<`` and ``>>``); versions compare as Debian's dpkg
compares them. A capability the worker reports as unavailable does not count.

The master never maps capability properties to environment variables: buildd does,
on the worker, when a step's environment names the requirements in BUILDD_REQUIRES,
so that secrets such as a database password never leave the worker.
"""

import json
import re

__all__ = [
    "Requirement",
    "Requirements",
    "compare_versions",
    "parse_requirement",
    "requires",
    "requires_env",
    "worker_capabilities",
]

ENV_VAR = "BUILDD_REQUIRES"
INFO_KEY = "capabilities"

# --- Debian version comparison ---------------------------------------------------------

_EPOCH = re.compile(r"^(\d+):")
_UPSTREAM = re.compile(r"^[0-9][A-Za-z0-9.+~-]*$")
_UPSTREAM_AFTER_EPOCH = re.compile(r"^[0-9][A-Za-z0-9.+~:-]*$")
_REVISION = re.compile(r"^[A-Za-z0-9.+~]+$")
_RUN = re.compile(r"([^0-9]*)([0-9]*)")


def parse_version(text):
    """(epoch, upstream, revision) of a Debian version, or None if it is not one."""
    epoch, rest = 0, text
    m = _EPOCH.match(rest)
    if m:
        epoch, rest = int(m.group(1)), rest[m.end():]
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    if not (_UPSTREAM_AFTER_EPOCH if m else _UPSTREAM).match(upstream):
        return None
    if dash and not _REVISION.match(revision):
        return None
    return epoch, upstream, revision


def _weight(c):
    """Sort weight of one character of a non-digit run; None is the end of the run."""
    if c is None:
        return 0
    if c == "~":
        return -1  # before everything, even the end
    if c.isascii() and c.isalpha():
        return ord(c)
    return ord(c) + 256  # other characters after letters


def _compare_part(a, b):
    # Alternate runs of non-digits (compared character by character) and digits
    # (compared as numbers) until both strings are used up.
    while a or b:
        ma, mb = _RUN.match(a), _RUN.match(b)
        text_a, digits_a = ma.groups()
        text_b, digits_b = mb.groups()
        for i in range(max(len(text_a), len(text_b))):
            d = _weight(text_a[i] if i < len(text_a) else None) - _weight(
                text_b[i] if i < len(text_b) else None
            )
            if d:
                return d
        d = int(digits_a or 0) - int(digits_b or 0)
        if d:
            return d
        a, b = a[ma.end():], b[mb.end():]
    return 0


def compare_versions(a, b):
    """Negative, zero or positive as version a sorts before, equal to or after b."""
    va, vb = parse_version(a), parse_version(b)
    if va is None or vb is None:
        raise ValueError(f"invalid version {a if va is None else b!r}")
    if va[0] != vb[0]:
        return va[0] - vb[0]
    return _compare_part(va[1], vb[1]) or _compare_part(va[2], vb[2])


def _sign(n):
    return (n > 0) - (n < 0)


# --- Requirements ------------------------------------------------------------------------

_REQUIREMENT = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._+-]*)\s*(?:(<<|<=|>=|>>|=|<|>)\s*([^\s<>=]\S*))?\s*$"
)
_STRICT = {"<": "<<", ">": ">>"}
_TESTS = {
    "<<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    "=": lambda c: c == 0,
    ">=": lambda c: c >= 0,
    ">>": lambda c: c > 0,
}


class Requirement:
    """One requirement: ``name`` or ``name OP version``."""

    def __init__(self, name, op=None, version=None):
        self.name, self.op, self.version = name, op, version

    def __str__(self):
        return self.name if self.op is None else f"{self.name} {self.op} {self.version}"

    __repr__ = __str__

    def check(self, capabilities):
        """(True, "") if the capabilities satisfy this requirement, else (False, why)."""
        entries = capabilities.get(self.name)
        if entries is None:
            return False, f"no capability {self.name}"
        if isinstance(entries, dict):
            entries = [entries]
        why = ""
        for entry in entries:
            if not isinstance(entry, dict):
                why = f"capability {self.name} is malformed"
                continue
            if entry.get("available", True) is not True:
                why = f"{self.name} is unavailable: {entry.get('reason') or 'no reason given'}"
                continue
            version = entry.get("version")
            if self.op is None:
                return True, ""
            if version is None:
                why = f"{self.name} has no version to compare with {self}"
                continue
            try:
                if _TESTS[self.op](compare_versions(str(version), self.version)):
                    return True, ""
            except ValueError:
                why = f"{self.name} has an invalid version {version!r}"
                continue
            why = f"{self.name} {version} does not satisfy {self}"
        return False, why


def parse_requirement(text):
    """Parse ``name`` or ``name OP version``; raises ValueError saying what is wrong."""
    m = _REQUIREMENT.match(text)
    if not m:
        raise ValueError(
            f'{text!r} is not a requirement (expected "name" or "name OP version", '
            "OP one of << <= = >= >>)"
        )
    name, op, version = m.groups()
    if op is None:
        return Requirement(name)
    if parse_version(version) is None:
        raise ValueError(f"{text!r}: {version!r} is not a valid version")
    return Requirement(name, _STRICT.get(op, op), version)


def worker_capabilities(worker):
    """The capabilities a connected worker reported, as a dict (empty if none or invalid).

    ``worker`` is the master's worker object (``workerforbuilder.worker`` in
    canStartBuild); its ``info`` holds what the worker sent at attach time.
    """
    info = getattr(worker, "info", None)
    if info is None:
        return {}
    raw = info.getProperty(INFO_KEY) if hasattr(info, "getProperty") else info.get(INFO_KEY)
    if isinstance(raw, (bytes, str)):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def _log(message):
    try:
        from twisted.python import log
    except ImportError:  # used outside a master
        return
    log.msg(message)


class Requirements:
    """A set of requirements, usable directly as a BuilderConfig's ``canStartBuild``.

    ``env`` is the environment that passes them to the worker on every shell step
    (``BuilderConfig(env=...)`` or a step's ``env``).
    """

    def __init__(self, *texts):
        # Each argument is one requirement or several separated by commas.
        self.requirements = [parse_requirement(part) for text in texts for part in text.split(",")]
        if not self.requirements:
            raise ValueError("requires() needs at least one requirement")
        self.env = {ENV_VAR: ", ".join(str(r) for r in self.requirements)}
        self._logged = set()

    def __str__(self):
        return self.env[ENV_VAR]

    def check(self, capabilities):
        """(True, "") if every requirement is met, else (False, the first reason)."""
        for req in self.requirements:
            ok, why = req.check(capabilities)
            if not ok:
                return False, why
        return True, ""

    def __call__(self, builder, workerforbuilder, buildrequest):
        worker = workerforbuilder.worker
        ok, why = self.check(worker_capabilities(worker))
        if not ok:
            # Once per builder, worker and reason: the master asks again on every change.
            key = (builder.name, worker.workername, why)
            if key not in self._logged:
                self._logged.add(key)
                _log(
                    f"buildd_capabilities: builder {builder.name} does not start on worker "
                    f"{worker.workername}: {why} (requires {self})"
                )
        return ok


def requires(*texts):
    """Requirements for a builder: ``requires("postgresql >= 13", "private-repo")``."""
    return Requirements(*texts)


def requires_env(*texts):
    """Only the environment: ``{"BUILDD_REQUIRES": "postgresql >= 13, private-repo"}``."""
    return dict(Requirements(*texts).env)
