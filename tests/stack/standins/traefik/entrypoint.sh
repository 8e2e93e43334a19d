#!/bin/sh
# Same contract as the official traefik image's entrypoint:
#   `docker run traefik --configFile=x`  -> traefik --configFile=x
#   `docker run traefik version`         -> traefik version   (a traefik subcommand)
#   `docker run traefik traefik ...`     -> traefik ...
#   anything else (e.g. `sh`)            -> run as given
set -e

# First argument is a flag: pass everything to traefik.
if [ "${1#-}" != "$1" ]; then
    set -- traefik "$@"
fi

# First argument is a traefik subcommand (traefik accepts `<cmd> --help`).
if [ "$1" != traefik ] && traefik "$1" --help >/dev/null 2>&1; then
    set -- traefik "$@"
fi

exec "$@"
