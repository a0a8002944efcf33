#!/usr/bin/env bash
# The wheels bench/device_run.sh installs on the GPU machine (Python 3.12, x86-64), fetched into
# .whl/ here (pip must reach a package index here; nothing can be fetched there). Name `.whl`
# in the device call's carry. `import data` needs none of them; the list is what the sample
# DSB2018 search reads and augments with (SimpleITK alone is 52.8 MB: WITH_SIMPLEITK=0 leaves it
# out to fit a call's 64 MiB if it does not); WITH_VOLUMES=1 adds nibabel and pydicom, which
# only the volume data sets (BraTS, CHAOS, PROMISE12) read.
set -eu
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >>"$(git rev-parse --git-path info/exclude)"
PACKAGES="albumentations==2.0.8 albucore==0.0.24 pydantic==2.14.4 pydantic_core==2.50.5
annotated-types==0.8.0 typing-inspection==0.4.5 simsimd==6.5.16 stringzilla==5.3.2"
[ "${WITH_VOLUMES:-0}" = 1 ] && PACKAGES="$PACKAGES nibabel==5.4.2 pydicom==3.0.2"
[ "${WITH_SIMPLEITK:-1}" = 1 ] && PACKAGES="$PACKAGES simpleitk==2.5.7"
# shellcheck disable=SC2086
${PYTHON:-python3} -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl $PACKAGES
du -sh .whl
