#!/usr/bin/env bash
# tests/gpu/fetch_debs.sh [DEST] -- the Debian 12 .deb files a GPU machine without MPI, HDF5 and
# libconfig needs to build and run foldline (tests/gpu/check.sh, tests/gpu/seed_scale.sh source
# DEST/env.sh), downloaded with apt-get download into DEST (default .gpu-debs, which git ignores),
# then checked for completeness against what the build needs.
#
# The download is tests/gpu/fetch-debs.sh (or the one in $FOLDLINE_GPU_SHARED): it also copies
# tests/gpu/env.sh, which unpacks the files on the GPU machine. The check
# lists every file the build and the run need (compiler wrappers, headers, libraries, pkg-config
# files) and every shared library those libraries NEED, and finds each in the .deb files (or, for a
# library, in the base set every glibc Linux has). One line per missing need; exit 1 when any is.
#
#   FETCH_DEBS_CHECK_ONLY=1   check DEST without downloading again
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dest=${1:-$root/.gpu-debs}
shared=${FOLDLINE_GPU_SHARED:-$root/tests/gpu}

if [[ -z ${FETCH_DEBS_CHECK_ONLY:-} ]]; then
  [[ -x $shared/fetch-debs.sh ]] || {
    echo "fetch_debs: no $shared/fetch-debs.sh HINT: set FOLDLINE_GPU_SHARED to the folder with fetch-debs.sh and env.sh" >&2
    exit 1
  }
  command -v apt-get > /dev/null || { echo "fetch_debs: no apt-get HINT: run this on a Debian or Ubuntu machine" >&2; exit 1; }
  sh "$shared/fetch-debs.sh" "$dest"
fi
[[ -f $dest/env.sh ]] || { echo "fetch_debs: no $dest/env.sh (fetch-debs.sh copies it)" >&2; exit 1; }

# Every path in the .deb files, and every NEEDED soname of their shared libraries.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for deb in "$dest"/*.deb "$dest"/fallback/*.deb; do
  dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >> "$tmp/files"
  mkdir -p "$tmp/x" && dpkg-deb -x "$deb" "$tmp/x"
done
# Open MPI's MCA components (mca_*.so, and the libmca_common_* only they use) are plugins: one whose library is missing (libfabric, UCX,
# InfiniBand verbs, PSM) is one env.sh disables, not a need.
find "$tmp/x" -name '*.so*' -type f ! -name 'mca_*' ! -name 'libmca_common_*' -print0 | xargs -0 -r objdump -p 2> /dev/null |
  awk '$1 == "NEEDED" { print $2 }' | sort -u > "$tmp/needed"
find "$tmp/x" \( -type f -o -type l \) -name '*.so*' -printf '%f\n' | sort -u > "$tmp/provided"

missing=0
need() { # a path pattern (grep -E) the build or the run needs, and why
  if ! grep -Eq "$1" "$tmp/files"; then
    echo "fetch_debs: MISSING $1 ($2)"
    missing=$((missing + 1))
  fi
}
need '/bin/mpicc(\.openmpi)?$' 'find_package(MPI): the C compiler wrapper'
need '/bin/mpirun$|/bin/orterun$' 'running foldline and nccl_step'
need '/mpi\.h$' 'MPI header'
need '/libmpi\.so$' 'link: libmpi'
need '/libmpi\.so\.40' 'run: libmpi'
need '/hdf5/serial/hdf5\.h$' 'find_package(HDF5 C): the serial HDF5 headers'
need '/hdf5/serial/hdf5_hl\.h$' 'HDF5 high-level API (H5LT)'
need '/libhdf5_serial\.so$' 'link: libhdf5'
need '/libhdf5_serial_hl\.so' 'link: libhdf5_hl'
need '/bin/h5cc$|/bin/h5pcc$|h5cc' 'find_package(HDF5) looks for h5cc'
need '/libconfig\.h$' 'libconfig header'
need '/libconfig\.pc$' 'pkg_check_modules(libconfig)'
need '/libconfig\.so\.9' 'run: libconfig'
need '/jpeglib\.h$' 'find_package(JPEG)'
need '/libjpeg\.so\.62' 'run: libjpeg'
need '/png\.h$' 'find_package(PNG)'
need '/libpng16\.so\.16' 'run: libpng'
need '/openmpi/.*mca_pmix|/pmix' 'Open MPI launching ranks (PMIx)'
# Sonames every glibc Linux with a compiler has (fetch-debs.sh leaves them out on purpose).
base='^(libc|libm|libdl|librt|libpthread|libutil|libresolv|ld-linux-x86-64|libstdc\+\+|libgcc_s|libz|libcrypt)\.so'
while read -r so; do
  if ! grep -qxF "$so" "$tmp/provided" && ! grep -Eq "$base" <<< "$so"; then
    echo "fetch_debs: MISSING $so (NEEDED by a library in $dest)"
    missing=$((missing + 1))
  fi
done < "$tmp/needed"
n=$(ls "$dest"/*.deb "$dest"/fallback/*.deb | wc -l)
if ((missing)); then
  echo "fetch_debs: $n .deb files in $dest, $missing needs missing (above)"
  exit 1
fi
echo "fetch_debs: $n .deb files in $dest ($(du -sh "$dest" | cut -f1)): complete: the build's 18 files and the $(wc -l < "$tmp/needed") sonames their libraries NEED are there"
