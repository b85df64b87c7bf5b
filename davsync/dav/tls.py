"""The TLS trust every DAV request of a run uses, built once.

The same rule as httpx's own default (`SSL_CERT_FILE`, else `SSL_CERT_DIR`, else certifi's
bundle), written down here so that the early probe (`earlyprobe.py`, standard library) and the
httpx client share one context: loading a CA bundle costs about 80 ms, and two trust rules in
one run would be a bug waiting to happen.
"""

from __future__ import annotations

import os
import ssl


def tls_context(verify: bool) -> ssl.SSLContext:
    """`verify = false` (`[server] verify_tls`) accepts any certificate: for a self-signed
    server on a trusted network only."""
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
