#!/bin/sh
# Runs inside the debootstrapped rootfs (chroot) of the python stand-in, after
# tests/stack/offline/standin-images.sh has copied in:
#   /usr/local/share/ca-certificates/*.crt   the host's extra CAs (the machine's
#                                            outbound HTTPS goes through an
#                                            intercepting proxy with its own CA)
#   /etc/pip.conf                            cert= plus the host's http(s) index
#                                            settings, if any
set -eu

# Trust the host's extra CAs in /etc/ssl/certs/ca-certificates.crt.
# (stderr: a harmless "rehash: skipping ca-certificates.crt" warning)
update-ca-certificates >/dev/null 2>&1

# Like the official python image, `pip install` outside a venv is allowed.
rm -f /usr/lib/python3*/EXTERNALLY-MANAGED

# Smaller image: no apt lists or caches (apt-get update works as usual).
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/* /root/.cache
