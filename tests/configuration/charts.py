"""A tiny Helm chart built in memory: one ConfigMap showing the settings it was installed with, and the version."""

from __future__ import annotations

import base64
import gzip
import io
import tarfile

TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  chartVersion: {{ .Chart.Version | quote }}
  greeting: {{ .Values.greeting | default "none" | quote }}
"""


BROKEN = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  greeting: {{ required "a greeting is required" .Values.nothing | quote }}
"""


def tiny_chart(version: str, name: str = "hello", template: str = TEMPLATE) -> bytes:
    files = {
        f"{name}/Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: '{version}'\n",
        f"{name}/values.yaml": "greeting: hello\n",
        f"{name}/templates/settings.yaml": template,
    }
    buffer = io.BytesIO()
    # gzip's header carries a time: fixed, so the same chart is the same bytes whenever it is made.
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tiny_chart_b64(version: str, name: str = "hello") -> str:
    return base64.b64encode(tiny_chart(version, name)).decode()


def broken_chart_b64() -> str:
    """A chart helm refuses to render (a required value missing): an install that fails with a reason."""
    return base64.b64encode(tiny_chart("1.0.0", "broken", BROKEN)).decode()
