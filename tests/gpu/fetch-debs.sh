#!/bin/sh
# fetch-debs.sh DEST -- download (not install) the Debian 12 (bookworm, amd64)
# .deb files that foldline needs to build and run on a machine that has no
# Open MPI / HDF5 / libconfig / libjpeg / libpng and no network.
# Run it where apt reaches Debian's archive; it also copies env.sh into DEST.
# Carry DEST to the other machine and source DEST/env.sh there.  See docs/gpus.md.
#
#   DEST/           core packages: always used from the unpacked prefix
#   DEST/fallback/  common system libraries: env.sh uses one of these only
#                   when the target system lacks that library (by SONAME)
#
# Not fetched, on purpose (every glibc Linux with a compiler has them):
# libc6, libgcc-s1, libstdc++6, zlib1g (runtime).
set -eu

DEST=${1:?usage: fetch-debs.sh DEST}

CORE="
openmpi-bin              mpirun/orterun, orted, opal_wrapper (mpicc), ompi_info, etc/openmpi
openmpi-common           help texts and mpicc wrapper data (share/openmpi)
libopenmpi3              libmpi, libopen-rte, libopen-pal and the MCA components
libopenmpi-dev           mpi.h, libmpi.so link, ompi*.pc
libpmix2                 PMIx, used by Open MPI 4.1 (mca_pmix_ext3x) to launch ranks
libhwloc15               topology library; needed by libopen-pal and libpmix
libevent-core-2.1-7      event loop; needed by libopen-pal and libpmix
libevent-pthreads-2.1-7  same
libmunge2                needed by libpmix.so.2
libnl-3-200              needed by the netlink 'reachable' component (TCP btl)
libhdf5-103-1            libhdf5_serial.so.103
libhdf5-hl-100           libhdf5_hl (H5LT/H5TB); libhdf5-dev links to it
libhdf5-dev              HDF5 headers (include/hdf5/serial), libhdf5.so link, hdf5-serial.pc
hdf5-helpers             h5cc (env.sh rewrites it for the new prefix, shared libs)
libsz2                   needed by libhdf5 (szip API)
libaec0                  needed by libsz2
libconfig9               libconfig.so.9
libconfig-dev            libconfig.h, libconfig.so link, libconfig.pc
libjpeg62-turbo          libjpeg.so.62
libjpeg62-turbo-dev      jpeglib.h, jconfig.h, libjpeg.so link, libjpeg.pc
libpng16-16              libpng16.so.16
libpng-dev               png.h, libpng.so link, libpng16.pc
"

FALLBACK="
libudev1                 needed by libhwloc
libcurl4                 libhdf5 NEEDs libcurl.so.4 (OpenSSL flavour; Ubuntu 24.04: libcurl4t64)
libssl3                  libhdf5 and libcurl NEED libcrypto.so.3 / libssl.so.3 (Ubuntu: libssl3t64)
libnghttp2-14            needed by libcurl
libidn2-0                needed by libcurl, libpsl
libunistring2            needed by libidn2, libpsl (Ubuntu 24.04 has only libunistring.so.5)
librtmp1                 needed by libcurl
libssh2-1                needed by libcurl
libpsl5                  needed by libcurl
libgssapi-krb5-2         needed by libcurl
libkrb5-3                needed by libgssapi-krb5
libk5crypto3             needed by libgssapi-krb5
libkrb5support0          needed by libkrb5
libcom-err2              needed by libkrb5
libkeyutils1             needed by libkrb5
libldap-2.5-0            needed by libcurl (Ubuntu 24.04 has libldap.so.2 instead)
libsasl2-2               needed by libldap
libzstd1                 needed by libcurl
libbrotli1               needed by libcurl
libgnutls30              needed by librtmp, libldap
libhogweed6              needed by gnutls, librtmp
libnettle8               needed by gnutls, librtmp
libgmp10                 needed by gnutls, hogweed
libp11-kit0              needed by gnutls
libtasn1-6               needed by gnutls
libffi8                  needed by p11-kit
zlib1g-dev               zlib.h and libz.so, only if the target lacks them (FindPNG needs ZLIB)
zlib1g                   what zlib1g-dev's libz.so points to
pkgconf-bin              pkgconf, only if the target has no pkg-config
pkgconf                  the pkg-config name for it
libpkgconf3              needed by pkgconf
"

names() { printf '%s\n' "$1" | awk 'NF { print $1 }'; }

# Always fetch amd64, also from an arm64 machine (separate package lists).
APT_OPTS="-o APT::Sandbox::User=root"
if [ "$(dpkg --print-architecture)" != amd64 ] || [ -n "${FETCH_DEBS_SEPARATE_LISTS:-}" ]; then
  lists=${TMPDIR:-/tmp}/foldline-amd64-lists
  mkdir -p "$lists/partial"
  APT_OPTS="$APT_OPTS -o APT::Architecture=amd64 -o APT::Architectures=amd64 -o Dir::State::Lists=$lists"
  # shellcheck disable=SC2086
  apt-get $APT_OPTS update >/dev/null
elif ! apt-cache show libhdf5-103-1 >/dev/null 2>&1; then
  apt-get update >/dev/null
fi

mkdir -p "$DEST/fallback"
rm -f "$DEST"/*.deb "$DEST"/fallback/*.deb    # no stale versions
# shellcheck disable=SC2046,SC2086
(cd "$DEST" && apt-get $APT_OPTS download $(names "$CORE") >/dev/null)
# shellcheck disable=SC2046,SC2086
(cd "$DEST/fallback" && apt-get $APT_OPTS download $(names "$FALLBACK") >/dev/null)

cp "$(dirname "$0")/env.sh" "$DEST/env.sh"    # travels with the .debs
# shellcheck disable=SC2012
n=$(ls "$DEST"/*.deb "$DEST"/fallback/*.deb | wc -l)
echo "fetch-debs: $n .deb files, $(du -sh "$DEST" | cut -f1) in $DEST"
