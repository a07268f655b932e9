#!/usr/bin/env bash
# Makes the Debian base image the container tests build on, without a registry: debootstrap
# from the Debian mirror apt already uses, imported into podman as localhost/debian:bookworm.
# Done once; later runs find the image and return at once.
set -euo pipefail
IMAGE=${1:-localhost/debian:bookworm}
podman image exists "$IMAGE" && exit 0

mirror=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
    | grep -oE 'https?://[^ ]+' | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
# What a slim image leaves out: package lists, docs, man pages and locales.
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/locale/* "$root"/var/cache/apt/*.bin
tar -C "$root" -c . | podman import --quiet - "$IMAGE" >/dev/null
