"""Downloading a PhysioNet database with wfdb, into a folder that appears only when complete."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from wfdb.io import download

from stimuli.data.recording import CohortError

PHYSIONET_FILES_URL = "https://physionet.org/files/"


def download_database(
    root: Path,
    db: str,
    version: str,
    suffixes: Sequence[str],
    extra_files: Sequence[str] = (),
    records: Sequence[str] | None = None,
    base_url: str | None = None,
) -> list[str]:
    """Fetch `RECORD<suffix>` for each record (and `extra_files`) of `db/version` into `root`.

    `base_url` replaces PhysioNet's file server (wfdb's database index URL), e.g. a mirror.
    Files go to a temporary folder beside `root` that is renamed into place at the end, so an
    interrupted download leaves nothing half-written.
    """
    url = base_url or PHYSIONET_FILES_URL
    previous = download.config.db_index_url
    download.set_db_index_url(url)
    db_dir = f"{db}/{version}"
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-download-", dir=root.parent))
    try:
        names = list(records) if records else download.get_record_list(db_dir)
        files = [f"{n}{s}" for n in names for s in suffixes] + list(extra_files)
        if not records:
            files.append("RECORDS")
        for f in files:
            download.dl_pn_file((f, "", db_dir, str(tmp), False, False))
        if root.exists():
            for f in tmp.iterdir():  # completing an existing folder: move file by file
                os.replace(f, root / f.name)
            shutil.rmtree(tmp)
        else:
            os.rename(tmp, root)
        return names
    except CohortError:
        raise
    except Exception as err:
        raise CohortError(
            f"{root}: could not download {db} v{version} from {url} ({type(err).__name__}: {err}). "
            f"Without network access, download it elsewhere (https://physionet.org/content/{db}/) "
            "and point data.root or STIMULI_DATA at the local copy."
        ) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        download.set_db_index_url(previous)
