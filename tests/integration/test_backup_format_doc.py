"""docs/backup-format.md is precise enough: its stand-alone script decrypts a real backup."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from davsync.app.backup import backup_run
from tests.fixtures.seaweed import PASSPHRASE, BackupEnv, make_file, run_opts

DOC = Path(__file__).resolve().parents[2] / "docs" / "backup-format.md"


def test_documented_script_decrypts_a_real_backup(backup_env: BackupEnv, tmp_path: Path) -> None:
    files = {
        "Pictures/a.png": make_file(backup_env.media / "Pictures" / "a.png", 3000),
        "Pictures/empty": make_file(backup_env.media / "Pictures" / "empty", 0),
        "Videos/v.mp4": make_file(backup_env.media / "Videos" / "v.mp4", (1 << 20) * 2 + 5),
        "Documents/exact": make_file(backup_env.media / "Documents" / "exact", 1 << 20),
    }
    backup_run(backup_env.backup_config(), run_opts()).run()
    s3 = backup_env.bucket.client()
    objects = tmp_path / "objects"
    for item in s3.list_objects_v2(Bucket=backup_env.bucket.name)["Contents"]:
        local = objects / item["Key"].removeprefix("laptop/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(s3.get_object(Bucket=backup_env.bucket.name,
                                        Key=item["Key"])["Body"].read())
    script = re.search(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert script is not None
    (tmp_path / "decrypt.py").write_text(script.group(1), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([sys.executable, str(tmp_path / "decrypt.py"), PASSPHRASE,
                    str(objects / "keyinfo"), str(objects / "manifest"), str(objects), str(out)],
                   check=True, timeout=60)
    category = {"Pictures": "images", "Videos": "videos", "Documents": "documents"}
    for name, original in files.items():
        flat = out / f"{category[name.split('/')[0]]}__{name.replace('/', '__')}"
        assert flat.read_bytes() == original.read_bytes()
    wrong = subprocess.run([sys.executable, str(tmp_path / "decrypt.py"), "Wr0ng-pass",
                            str(objects / "keyinfo"), str(objects / "manifest"), str(objects),
                            str(out)], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
