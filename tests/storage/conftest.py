"""The storage tier's shared fixtures, for every module here: the S3 server (`s3_endpoint`, one per
module), a storage on `file://` and on `s3://` (`storage`), where a `genfab run` writes (`target`), and the
tiny chat model's endpoint (`chat_server`)."""

from tests.storage.chat_server import chat_server  # noqa: F401  (fixtures)
from tests.storage.ledger import target  # noqa: F401
from tests.storage.s3 import s3_endpoint, storage  # noqa: F401
