"""The bearer transport: the token pair in the JSON body (`/api/auth/…`,
`/api/token/…`). The client keeps the tokens and sends `Authorization: Bearer …`;
no CSRF question arises, as a browser never adds that header by itself."""

from fastapi import Response

from app.auth.service import Login
from app.auth.transports import remember_device
from app.config import Settings
from app.schema.auth import TokenPair


class BearerTransport:
    DEVICE_PATH = "/api/token"

    @classmethod
    def login(cls, response: Response, login: Login, settings: Settings) -> TokenPair:
        """The pair in the body; the device cookie for the token path."""
        remember_device(response, login.device_token, settings, path=cls.DEVICE_PATH)
        return login.pair
