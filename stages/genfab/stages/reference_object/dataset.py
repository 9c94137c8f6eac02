"""Where reference-object's YOLO datasets keep their files (`06_yolo_dataset/`, and step 7's
`07_cv_augmented_dataset/` and `07_cv_combined_dataset/`), relative to the execution folder."""

from __future__ import annotations

from genfab.stages.reference_object.yolo import dataset_yaml
from genfab.stages.runtime import BadInput, StageContext
from genfab.storage import Storage

YOLO = "06_yolo_dataset"
CV_AUGMENTED = "07_cv_augmented_dataset"
CV_COMBINED = "07_cv_combined_dataset"
SPLITS = ("train", "val")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def read_uri(ctx: StageContext, uri: str, what: str) -> bytes:
    """One file given by URI (a spec's `inputImage`, `projectInfoUri`); BadInput naming the field when
    it is not there."""
    folder, _, name = uri.rstrip("/").rpartition("/")
    store = ctx.open(folder)
    if not name or not store.exists(name):
        raise BadInput(f"{what} {uri} does not exist")
    return store.read_bytes(name)


def read_text_uri(ctx: StageContext, uri: str, what: str) -> str:
    return read_uri(ctx, uri, what).decode("utf-8", errors="replace")


def _under(root: str, key: str) -> str:
    return f"{root}/{key}" if root else key


def image_key(root: str, split: str, stem: str, suffix: str) -> str:
    """`<root>/<split>/images/<stem><suffix>`; an empty root is the dataset's own folder."""
    return _under(root, f"{split}/images/{stem}{suffix}")


def label_key(root: str, split: str, stem: str) -> str:
    return _under(root, f"{split}/labels/{stem}.txt")


def local_path(store: Storage, root: str) -> str | None:
    """The dataset folder as a path on this machine when the output is a local folder (file://),
    else None (object storage: the reader copies it down first)."""
    uri = store.child(root) if root else store.uri
    return uri.removeprefix("file://") if uri.startswith("file://") else None


def write_dataset_files(store: Storage, root: str, names: list[str]) -> None:
    """`dataset.yaml` and `classes.txt` of the dataset at `root`."""
    store.write_bytes(_under(root, "dataset.yaml"), dataset_yaml(names, local_path(store, root)).encode())
    store.write_bytes(_under(root, "classes.txt"), ("\n".join(names) + "\n").encode())


def find_image(store: Storage, root: str, stem: str) -> tuple[str, str]:
    """(split, key) of an annotated image: it is in exactly one split."""
    for split in SPLITS:
        for suffix in IMAGE_SUFFIXES:
            key = image_key(root, split, stem, suffix)
            if store.exists(key):
                return split, key
    raise LookupError(f"{store.child(root)}: no image {stem}.* under train/images or val/images")
