"""OpenID Connect shapes: where a sign-in may return to, a user's links to
providers as the list shows them, and the providers a sign-in page offers."""

import string
from datetime import datetime
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

MAX_REDIRECT_LENGTH = 2000
MAX_CALLBACK_VALUE_LENGTH = 2000
# What a same-origin path may hold: no backslash (browsers read it as a slash:
# `/\evil.example` is another host), no whitespace or control character (stripped
# or read differently by browsers), nothing that needs escaping.
_PATH_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/?#%[]")


def same_origin_path(value: str) -> str:
    """A path on this site (`/account?tab=2`), or ValueError: never a URL with a
    scheme or a host (`https://evil.example`, `javascript:…`), nor a
    protocol-relative one (`//evil.example`, `/\\evil.example`), nor anything a
    browser could read as one."""
    if not value.startswith("/") or value.startswith("//"):
        raise ValueError("must be a path on this site, starting with a single /")
    if not set(value) <= _PATH_CHARACTERS:
        raise ValueError("holds characters a path on this site does not")
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        raise ValueError("must be a path on this site, not a URL")
    return value


class OidcLinkOut(BaseModel):
    """An account at an OpenID provider that signs in to this one."""

    model_config = ConfigDict(from_attributes=True)

    provider: str = Field(description="The provider's name, as in the sign-in routes.")
    email: str = Field(description="The verified address the provider asserted at linking.")
    created_at: datetime = Field(description="When the link was made.")


class OidcProviderOut(BaseModel):
    """A configured provider, as a sign-in page shows it: nothing of its
    configuration but its name and what its button says."""

    name: str = Field(
        description="As in the sign-in routes: `/api/auth/oidc/{name}/start`.", examples=["google"]
    )
    display_name: str = Field(
        description="What its sign-in button says (OIDC_PROVIDERS' `display_name`, else the name).",
        examples=["Google"],
    )
