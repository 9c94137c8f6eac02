"""`_genfab/status.json`: the status of a `genfab run` as a document beside its output (in a cluster the
status is the resource's own). `genfab run` writes it; `genfab status`, `genfab report`, `genfab review`
and a later run (whose record is it? did it finish?) read it through this one model."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from genfab.api.resources import API_VERSION
from genfab.api.status import ResourceStatus
from genfab.contract.documents import DocumentError, parse_document


class DocumentMeta(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    namespace: str | None = None


class StatusDocument(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")
    api_version: str = API_VERSION
    kind: str
    metadata: DocumentMeta
    executor: str | None = None
    """`local`: written by `genfab run`."""
    status: ResourceStatus

    @classmethod
    def read(cls, raw: bytes | str, where: str) -> StatusDocument:
        """The document in `raw` (already read within its reader's bound); DocumentError, in one line
        naming the field, for anything that is not the shape genfab writes."""
        try:
            return cls.model_validate(parse_document(raw, where))
        except ValidationError as exc:
            first = exc.errors()[0]
            place = ".".join(str(p) for p in first.get("loc", ()))
            raise DocumentError(f"{where}: {place}: {first.get('msg', 'not what genfab writes')}") from None

    def document(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.metadata.name, "namespace": self.metadata.namespace}
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": meta, "executor": self.executor,
                "status": self.status.to_yaml_dict()}

    def to_json(self) -> bytes:
        return json.dumps(self.document(), indent=2).encode()
