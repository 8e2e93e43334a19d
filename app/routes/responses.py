"""JSON answers serialised once, by pydantic's own encoder.

A route that returns a model lets FastAPI validate it against `response_model`,
dump it to Python objects and encode those with the standard library; returning
this response instead skips all three (the route keeps `response_model=` for the
OpenAPI document). Use it only with the model the route declares.
"""

from fastapi import Response
from pydantic import BaseModel


class PydanticJSONResponse(Response):
    media_type = "application/json"

    def __init__(self, model: BaseModel, status_code: int = 200) -> None:
        super().__init__(model.model_dump_json(), status_code=status_code)
