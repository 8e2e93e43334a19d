"""Audit trail shapes: the event types, an event as the lists show it, the
lists' filters and their pages (newest first, by cursor)."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from app.schema.common import MAX_ID

MAX_CURSOR = 2**63 - 1


class EventType(StrEnum):
    """What happened. Every change to who may sign in or act as whom is one."""

    REGISTERED = "user.registered"
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGOUT = "logout"
    LOGOUT_EVERYWHERE = "logout.everywhere"
    SESSION_ENDED = "session.ended"
    SESSIONS_ENDED = "sessions.ended"
    REFRESH_REUSED = "refresh.reused"
    PASSWORD_CHANGED = "password.changed"  # noqa: S105 (an event name)
    PASSWORD_RESET = "password.reset"  # noqa: S105 (an event name)
    EMAIL_CHANGED = "email.changed"
    EMAIL_VERIFIED = "email.verified"
    ACCOUNT_SECURED = "account.secured"
    ROLES_GRANTED = "roles.granted"
    ROLES_REVOKED = "roles.revoked"
    ROLE_CREATED = "role.created"
    ROLE_UPDATED = "role.updated"
    ROLE_DELETED = "role.deleted"
    MFA_ENABLED = "mfa.enabled"
    MFA_DISABLED = "mfa.disabled"
    MFA_RECOVERY_CODES_REGENERATED = "mfa.recovery_codes_regenerated"
    OIDC_LINKED = "oidc.linked"
    OIDC_UNLINKED = "oidc.unlinked"
    PASSKEY_REGISTERED = "passkey.registered"
    PASSKEY_RENAMED = "passkey.renamed"
    PASSKEY_REMOVED = "passkey.removed"
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    USER_DEACTIVATED = "user.deactivated"
    USER_REACTIVATED = "user.reactivated"
    USER_DELETED = "user.deleted"

    @property
    def description(self) -> str:
        return EVENT_DESCRIPTIONS[self]


EVENT_DESCRIPTIONS: dict[EventType, str] = {
    EventType.REGISTERED: "An account was created (its first session with it).",
    EventType.LOGIN_SUCCEEDED: "A sign-in opened a session; `details.method`: `password`, or "
    "`totp` or `recovery_code` for a second step, `oidc` for an OpenID provider (with "
    "`details.provider`), `passkey` for a passkey; `details.new_device` when the account had "
    "not been used from this device before (its owner gets a notice).",
    EventType.LOGIN_FAILED: "A sign-in was refused; `details.reason`: `unknown_account`, "
    "`wrong_password`, `account_inactive`, `email_not_verified` or `account_changed`; for a "
    "second step `unknown_challenge`, `challenge_invalid` (spent, expired, out of guesses, or "
    "voided by a password change), `wrong_second_factor`, or `already_used` (the code or the "
    "challenge, by a replay or a concurrent twin); for an OpenID provider (with "
    "`details.provider`) `oidc_state_mismatch` (no flow cookie, another browser's, or a "
    "forged `state`), `oidc_provider_error` (the provider answered an error), "
    "`oidc_token_refused` (its token endpoint refused the code: replayed, or a wrong PKCE "
    "verifier), `oidc_id_token_invalid` (signature, issuer, audience, expiry or nonce), "
    "`oidc_email_unverified` (no verified address asserted); for a passkey "
    "`passkey_ceremony_invalid` (forged, spent, expired or a registration's), `unknown_passkey`, "
    "`passkey_user_handle` (the authenticator named another account), `passkey_origin`, "
    "`passkey_rp_id`, `passkey_challenge`, `passkey_wrong_ceremony`, `passkey_user_not_present`, "
    "`passkey_user_not_verified`, `passkey_signature`, `passkey_sign_count` (the signature "
    "counter did not move forward: a cloned authenticator, or a replay), `passkey_malformed` "
    "or `passkey_invalid`, and `already_used` when a concurrent sign-in moved the counter "
    "first. One refused by the throttle (429) is not recorded.",
    EventType.LOGOUT: "A session was logged out with its refresh token.",
    EventType.LOGOUT_EVERYWHERE: "Every session of the account was logged out by its owner.",
    EventType.SESSION_ENDED: "One session was ended from the list of sessions.",
    EventType.SESSIONS_ENDED: "Every session of the account was ended by an administrator.",
    EventType.REFRESH_REUSED: "A spent refresh token was presented again: its session was "
    "ended (a stolen token, or a client that lost its newest one).",
    EventType.PASSWORD_CHANGED: "The password was changed; every session ended.",
    EventType.PASSWORD_RESET: "The password was reset from a mailed link; every session ended.",
    EventType.EMAIL_CHANGED: "The account's address changed (`details.from`, `details.to`).",
    EventType.EMAIL_VERIFIED: "The account's address was proven by a mailed link.",
    EventType.ACCOUNT_SECURED: "'This wasn't me': the old address took the account back; "
    "every session ended and the password was voided.",
    EventType.ROLES_GRANTED: "Roles were granted to the account (`details.roles`).",
    EventType.ROLES_REVOKED: "Roles were withdrawn from the account (`details.roles`).",
    EventType.ROLE_CREATED: "A role was created (`details.role`, `details.permissions`).",
    EventType.ROLE_UPDATED: "A role's permissions or description changed.",
    EventType.ROLE_DELETED: "A role was deleted, withdrawn from every holder.",
    EventType.MFA_ENABLED: "A second factor (TOTP) was confirmed: logins now ask for it; "
    "ten recovery codes were issued.",
    EventType.MFA_DISABLED: "The second factor was disabled (`details.method`: the `totp` "
    "code or `recovery_code` that allowed it); its recovery codes are void.",
    EventType.MFA_RECOVERY_CODES_REGENERATED: "Ten new recovery codes were issued; the "
    "previous ones are void.",
    EventType.OIDC_LINKED: "An account at an OpenID provider was linked to this one "
    "(`details.provider`, `details.email`; `details.how`: `created` for a new account, "
    "`linked` to an account whose address was verified (its owner gets a notice), "
    "`claimed` for one whose address never was: its password was voided and every "
    "session ended).",
    EventType.OIDC_UNLINKED: "An OpenID provider's account was unlinked by the owner "
    "(`details.provider`): it no longer signs in here.",
    EventType.PASSKEY_REGISTERED: "A passkey was registered to the account "
    "(`details.passkey_id`, `details.name`): it signs in from now on.",
    EventType.PASSKEY_RENAMED: "A passkey was renamed (`details.passkey_id`, `details.name`).",
    EventType.PASSKEY_REMOVED: "A passkey was removed by the owner (`details.passkey_id`, "
    "`details.name`): it no longer signs in.",
    EventType.API_KEY_CREATED: "An API key was created (`details.key_id`, `name`, `prefix`, "
    "`scopes`; never the key).",
    EventType.API_KEY_REVOKED: "An API key was revoked.",
    EventType.USER_DEACTIVATED: "The account was deactivated; every session ended.",
    EventType.USER_REACTIVATED: "The account was activated again.",
    EventType.USER_DELETED: "The account was deleted.",
}


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Increases with every event: the order of the lists.")
    type: EventType
    occurred_at: datetime
    actor_id: int | None = Field(
        description="The user who did it; null when nobody was signed in (a failed "
        "login, a mailed link)."
    )
    target_id: int | None = Field(description="The account it concerns, if any.")
    client_address: str | None = Field(
        description="Where the request came from (null in your own list for what "
        "someone else did to your account)."
    )
    user_agent: str | None
    details: dict[str, Any] = Field(description="What the event type says it holds.")


class EventPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: int | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page."
    )


class EventFilter(BaseModel):
    """The query string of an event list: newest first, `limit` at a time, each
    page after `cursor`."""

    limit: int = Field(default=50, ge=1, le=100, description="Page size, 1–100.")
    cursor: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CURSOR,
        description="`next_cursor` of the previous page: events older than it.",
    )
    type: EventType | None = Field(default=None, description="Only events of this type.")
    since: AwareDatetime | None = Field(
        default=None, description="Only events at or after this time (with a time zone)."
    )
    until: AwareDatetime | None = Field(
        default=None, description="Only events before this time (with a time zone)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> "EventFilter":
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("`since` must be before `until`")
        return self


class AuditFilter(EventFilter):
    """An auditor's filters: any account's events."""

    actor: int | None = Field(default=None, ge=1, le=MAX_ID, description="Only what this user did.")
    target: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Only what concerns this user's account."
    )
