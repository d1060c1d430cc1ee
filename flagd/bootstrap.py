"""First start: make sure there is a project and an admin API key, and say how to use them.

On an empty store, ``bootstrap`` creates a default project and an admin key (write access to every project)
and returns them for the CLI to print with ready ``curl`` lines. ``FLAGD_BOOTSTRAP_PROJECT_TOKEN`` /
``_PROJECT_SECRET`` / ``_ADMIN_KEY`` make the values deterministic and the step idempotent: a project with
that token, or a key with that value, is reused rather than created again. With ``demo``, the flags in
``flagd/demo/flags.json`` are loaded into the default project when it has none.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from importlib import resources

from flagd.porting import import_flags, parse_document
from flagd.settings import Settings
from store.errors import Conflict
from store.records import Project
from store.sql.repository import AdminRepository

ACTOR = "system:bootstrap"
DEFAULT_PROJECT_NAME = "Default project"


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    project: Project
    created_project: bool
    project_secret: str | None  # known when created now or configured
    admin_key: str | None  # the raw key, known when created now or configured
    created_admin_key: bool
    demo_flags: int
    # Values the environment provided (FLAGD_BOOTSTRAP_*) are never echoed: the operator has them, and a
    # log collector keeping every start's output should not.
    secret_from_env: bool = False
    admin_key_from_env: bool = False

    def banner(self, base_url: str) -> str:
        """What a newcomer needs, ready to paste (only values known to this process are shown)."""
        p = self.project
        lines = [
            f"flagd: {'created' if self.created_project else 'using'} project {p.name!r} (id {p.id})",
            f"  project token (public, for SDKs):      {p.api_token}",
        ]
        if self.project_secret:
            shown = "$FLAGD_BOOTSTRAP_PROJECT_SECRET" if self.secret_from_env else self.project_secret
            lines.append(f"  project secret (SDK local evaluation): {shown}")
        admin_key = "$FLAGD_BOOTSTRAP_ADMIN_KEY" if self.admin_key_from_env else self.admin_key
        if admin_key:
            lines.append(f"  admin API key (every project, write): {admin_key}")
        if self.demo_flags:
            lines.append(f"  loaded {self.demo_flags} demo flags")
        lines += [
            "Evaluate flags for a user:",
            f"  curl -s '{base_url}/flags/?v=2' -H 'Content-Type: application/json' "
            f"""-d '{{"api_key": "{p.api_token}", "distinct_id": "user-1"}}'""",
        ]
        if admin_key:
            quote = '"' if self.admin_key_from_env else "'"
            lines += [
                "List flags (admin API):",
                f"  curl -s '{base_url}/api/projects/{p.id}/feature_flags/' "
                f"-H {quote}Authorization: Bearer {admin_key}{quote}",
            ]
        generated = (self.project_secret and not self.secret_from_env) or (
            self.admin_key and not self.admin_key_from_env
        )
        if self.created_project and generated:
            lines.append("These secrets are shown once; they are stored hashed.")
        return "\n".join(lines)


async def bootstrap(
    repository: AdminRepository, settings: Settings, *, demo: bool = False
) -> BootstrapResult:
    """Ensure a project and an admin key exist (see the module docstring)."""
    project, secret, created = await _project(repository, settings)
    admin_key, created_key = await _admin_key(repository, settings, first_start=created)
    loaded = await load_demo(repository, project.id) if demo else 0
    return BootstrapResult(
        project=project,
        created_project=created,
        project_secret=secret,
        admin_key=admin_key,
        created_admin_key=created_key,
        demo_flags=loaded,
        secret_from_env=settings.bootstrap_project_secret is not None,
        admin_key_from_env=settings.bootstrap_admin_key is not None,
    )


async def _project(repository: AdminRepository, settings: Settings) -> tuple[Project, str | None, bool]:
    token = settings.bootstrap_project_token
    for attempt in range(3):
        projects = await repository.list_projects()
        if token is not None:
            match = [p for p in projects if p.api_token == token]
            if match:
                return match[0], settings.bootstrap_project_secret, False
        elif projects:
            return min(projects, key=lambda p: p.id), settings.bootstrap_project_secret, False
        try:
            created = await repository.create_project(
                DEFAULT_PROJECT_NAME,
                actor=ACTOR,
                api_token=token,
                secret_token=settings.bootstrap_project_secret,
                only_if_first=token is None,
            )
        except Conflict:
            # Another node bootstrapped at the same moment (the same token, or the first project): use theirs.
            await asyncio.sleep(0.05 * (attempt + 1))
            continue
        return created.project, created.secret_token, True
    raise RuntimeError("bootstrap: could not create or find the default project")


async def _admin_key(
    repository: AdminRepository, settings: Settings, *, first_start: bool
) -> tuple[str | None, bool]:
    raw = settings.bootstrap_admin_key
    if raw is not None:
        if await repository.authenticate(raw) is not None:
            return raw, False
        try:
            await repository.create_api_key(
                label="bootstrap admin", scope="write", project_id=None, actor=ACTOR, raw_key=raw
            )
        except Conflict:
            return raw, False
        return raw, True
    if not first_start:
        return None, False
    created = await repository.create_api_key(
        label="bootstrap admin", scope="write", project_id=None, actor=ACTOR
    )
    return created.raw_key, True


def demo_document_text() -> str:
    return resources.files("flagd").joinpath("demo/flags.json").read_text("utf-8")


async def load_demo(repository: AdminRepository, project_id: int) -> int:
    """Load the demo flags into a project that has no flags yet; the number loaded."""
    if (await repository.list_flags(project_id, limit=1)).total > 0:
        return 0
    report = await import_flags(repository, project_id, parse_document(demo_document_text()), actor=ACTOR)
    if not report.ok:
        problems = "; ".join(f"{key}: {issues}" for key, issues in report.failed.items())
        raise RuntimeError(f"bootstrap: the demo flags do not validate: {problems}")
    return len(report.created)
