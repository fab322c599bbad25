"""Who submits feedback, and who may: the local reviewer's identity and the operator's list of allowed reviewers.

On a Space the reviewer is the signed-in Hub user (``gr.OAuthProfile``). Locally it is the user of the Hub
token, or the name given with ``--reviewer``; when neither is known the app refuses to start unless
``--allow-anonymous`` is given. A token the Hub cannot verify (offline, revoked, another endpoint) is
reported in one clear warning, never silently turned into a shared name.

``Reviewers.parse("alice,org:acme")`` restricts reviewing to the user ``alice`` and the members of the
organisation ``acme`` (names compared case-insensitively, as the Hub does).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import NETWORK_ERRORS, BadConfig
from ..paths import is_hub_name
from .records import InvalidFeedback

logger = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
ORG_PREFIX = "org:"
REVIEWERS_SYNTAX = "USER,org:ORG,... (Hub names separated by commas)"
NAME_RULE = "ASCII letters, digits, '-', '_' or '.', starting and ending with a letter or digit"


def check_hub_name(name: str, what: str, hint: str = "") -> str:
    """``name`` stripped; BadConfig saying ``what`` it is, the Hub's rule for names and ``hint`` when no Hub user or
    organisation could have it."""
    name = str(name or "").strip()
    if not is_hub_name(name):
        shown = repr(name) if len(name) <= 40 else repr(name[:40]) + "…"
        raise BadConfig(f"{what} {shown} is not a Hub name ({NAME_RULE}){'; ' + hint if hint else ''}")
    return name


@dataclass(frozen=True)
class Identity:
    """Who this process records feedback as (``None`` on a Space: each signed-in user) and what to warn about."""

    user: str | None
    orgs: tuple[str, ...] = ()
    warning: str | None = None


def _whoami(token: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """(the Hub's answer for ``token``, None) or (None, why it could not be verified)."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    try:
        return HfApi(token=token).whoami(), None
    except LocalTokenNotFoundError:
        return None, "no Hub token: set HF_TOKEN or run `hf auth login`"
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else "?"
        return None, f"{constants.ENDPOINT} refused it with HTTP {status}"
    except (*NETWORK_ERRORS, OSError, ValueError) as err:  # offline, unreachable, or not a Hub at all
        return None, f"{constants.ENDPOINT} could not be reached: {type(err).__name__}"


def local_identity(token: str | None, reviewer: str | None = None, allow_anonymous: bool = False) -> Identity:
    """The local reviewer: ``reviewer`` if given, else the token's user; BadConfig when nobody is known.

    ``allow_anonymous`` lets the app run without a known user (feedback recorded as ``anonymous``).
    """
    if reviewer is not None:
        reviewer = check_hub_name(reviewer, "--reviewer")
    answer, reason = _whoami(token)
    token_user = str(answer["name"]) if answer else None
    orgs = tuple(str(org.get("name", "")) for org in (answer or {}).get("orgs") or [] if org.get("name"))
    warning = None
    if answer is None:
        warning = f"the Hub token could not be verified ({reason})"
    if reviewer:
        if token_user and reviewer.casefold() != token_user.casefold():
            logger.info("recording feedback as %s (--reviewer); the token belongs to %s", reviewer, token_user)
        if warning:
            warning += f": feedback is recorded as {reviewer} (--reviewer), and pushing it to the Hub may fail"
        same = token_user is not None and reviewer.casefold() == token_user.casefold()
        return Identity(reviewer, orgs if same else (), warning)
    if token_user:
        return Identity(token_user, orgs)
    if allow_anonymous:
        return Identity(ANONYMOUS, (), f"{warning}: feedback is recorded as '{ANONYMOUS}' (--allow-anonymous)")
    raise BadConfig(
        f"cannot tell who is reviewing: {warning}; pass --reviewer NAME to record feedback under your name, "
        "or --allow-anonymous to record it as 'anonymous'"
    )


def profile_orgs(profile: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The organisations of a signed-in Hub user, as far as the sign-in profile tells (``orgs`` of userinfo)."""
    orgs = (profile or {}).get("orgs") or []
    names = (org.get("preferred_username") or org.get("name") for org in orgs if isinstance(org, Mapping))
    return tuple(str(name) for name in names if name)


@dataclass(frozen=True)
class Reviewers:
    """The users and organisations allowed to review; empty = everyone who can sign in."""

    users: frozenset[str] = field(default_factory=frozenset)
    orgs: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, items: Iterable[str] | str | None) -> Reviewers:
        """``["alice", "org:acme"]`` or ``"alice,org:acme"``; BadConfig on a name no Hub user or organisation has,
        or on a list that names nobody (which would let everyone in)."""
        items = [str(item).strip() for item in (items.split(",") if isinstance(items, str) else items or [])]
        users, orgs = set(), set()
        syntax = f"list reviewers as {REVIEWERS_SYNTAX}"
        for item in items:
            if not item:
                continue
            if item.casefold().startswith(ORG_PREFIX):
                orgs.add(check_hub_name(item[len(ORG_PREFIX):], "reviewer organisation", syntax).casefold())
            else:
                users.add(check_hub_name(item, "reviewer", syntax).casefold())
        if items and not (users or orgs):
            raise BadConfig(f"the reviewer list names nobody; {syntax}, or leave it out to let everyone who can "
                            "sign in review")
        return cls(frozenset(users), frozenset(orgs))

    def __bool__(self) -> bool:
        return bool(self.users or self.orgs)

    def describe(self) -> str:
        """``alice and members of acme`` (sorted)."""
        parts = sorted(self.users) + [f"members of {org}" for org in sorted(self.orgs)]
        return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1] if parts else "everyone"

    def allows(self, user: str, orgs: Iterable[str] = ()) -> bool:
        """Whether ``user`` (a member of ``orgs``) may review."""
        if not self:
            return True
        return user.casefold() in self.users or any(org.casefold() in self.orgs for org in orgs)

    def check(self, user: str, orgs: Iterable[str] = ()) -> None:
        """InvalidFeedback (one line) unless ``user`` may review."""
        if not self.allows(user, orgs):
            raise InvalidFeedback(f"{user} may not review here: this app takes feedback from {self.describe()} only")
