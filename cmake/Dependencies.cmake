# Third-party dependencies. Required: Torch (ATen), nlohmann_json, CLI11, fmt.
# Optional parts default to what the machine has: CUDA (nvcc *and* a CUDA-enabled Torch), FFmpeg, OpenCV.

find_package(Threads REQUIRED)
find_package(Torch REQUIRED)
# Header-only libraries: their CMake packages where installed, else the bare headers (some images
# ship only the headers).
function(sanastream_header_only target header)
  if(TARGET ${target})
    return()
  endif()
  find_path(_dir ${header} REQUIRED)
  string(REPLACE "::" "_" _plain ${target})
  add_library(${_plain}_headers INTERFACE)
  target_include_directories(${_plain}_headers SYSTEM INTERFACE ${_dir})
  target_compile_definitions(${_plain}_headers INTERFACE ${ARGN})
  add_library(${target} ALIAS ${_plain}_headers)
  unset(_dir CACHE)
endfunction()
find_package(nlohmann_json 3.9 QUIET)
find_package(CLI11 QUIET)
find_package(fmt QUIET)
sanastream_header_only(nlohmann_json::nlohmann_json nlohmann/json.hpp)
sanastream_header_only(CLI11::CLI11 CLI/CLI.hpp)
sanastream_header_only(fmt::fmt-header-only fmt/format.h FMT_HEADER_ONLY=1)

# --- CUDA: only when nvcc and a CUDA-enabled Torch are both present -------------------------------
include(CheckLanguage)
check_language(CUDA)
set(_torch_has_cuda OFF)
if(TARGET torch_cuda OR TARGET c10_cuda OR CAFFE2_USE_CUDA)
  set(_torch_has_cuda ON)
endif()
set(_cuda_default OFF)
if(CMAKE_CUDA_COMPILER AND _torch_has_cuda)
  set(_cuda_default ON)
endif()
option(SANASTREAM_CUDA "Build the CUDA path (needs nvcc and a CUDA-enabled Torch)" ${_cuda_default})
if(SANASTREAM_CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    message(FATAL_ERROR "SANASTREAM_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
  if(NOT _torch_has_cuda)
    message(FATAL_ERROR "SANASTREAM_CUDA=ON but Torch at ${Torch_DIR} was built without CUDA")
  endif()
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90a)   # H100/H200: wgmma and TMA need the "a" target
  endif()
  set(CMAKE_CUDA_STANDARD 17)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  # cuDNN's backend API for the VAE's FP8 convolutions (issue 15); without it they are simulated.
  find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9
               HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib ${CUDAToolkit_LIBRARY_ROOT}/lib64)
  if(CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY)
    set(SANASTREAM_CUDNN ON)
    message(STATUS "sanastream: cuDNN ${CUDNN_LIBRARY} (the VAE's FP8 convolutions)")
  else()
    set(SANASTREAM_CUDNN OFF)
    message(STATUS "sanastream: no cuDNN headers and library; the VAE's FP8 convolutions are simulated")
  endif()
endif()

# --- FFmpeg (video I/O) -------------------------------------------------------------------------
find_package(PkgConfig QUIET)
set(_ffmpeg_found OFF)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(FFMPEG QUIET IMPORTED_TARGET libavformat libavdevice libavcodec libswscale libavutil libswresample)
  if(FFMPEG_FOUND)
    set(_ffmpeg_found ON)
  endif()
endif()
option(SANASTREAM_FFMPEG "Video I/O through FFmpeg's libraries" ${_ffmpeg_found})
if(SANASTREAM_FFMPEG AND NOT _ffmpeg_found)
  message(FATAL_ERROR "SANASTREAM_FFMPEG=ON but the FFmpeg development libraries were not found")
endif()

# --- OpenCV (evaluation metrics) ------------------------------------------------------------------
find_package(OpenCV QUIET COMPONENTS core imgproc video)
set(_opencv_found OFF)
if(OpenCV_FOUND)
  set(_opencv_found ON)
endif()
option(SANASTREAM_OPENCV "Evaluation metrics through OpenCV" ${_opencv_found})
if(SANASTREAM_OPENCV AND NOT _opencv_found)
  message(FATAL_ERROR "SANASTREAM_OPENCV=ON but OpenCV was not found")
endif()

# --- SentencePiece (the text encoder's tokenizer; spm_train for a test) --------------------------
# Off where the library is missing: the Gemma-2 model and its golden check build without it; the
# tokenizer, the prompt encoder and `encode-prompt` need it. It is wrapped in a module loaded at run
# time (src/model/sentencepiece_shim.h says why).
find_path(SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h)
find_library(SENTENCEPIECE_LIBRARY sentencepiece)
find_program(SPM_TRAIN_PROGRAM spm_train)  # Debian's sentencepiece tools: a test trains a model with it
set(_sentencepiece_found OFF)
if(SENTENCEPIECE_INCLUDE_DIR AND SENTENCEPIECE_LIBRARY)
  set(_sentencepiece_found ON)
endif()
option(SANASTREAM_SENTENCEPIECE "Tokenizer and prompt encoding through libsentencepiece" ${_sentencepiece_found})
if(SANASTREAM_SENTENCEPIECE AND NOT _sentencepiece_found)
  message(FATAL_ERROR "SANASTREAM_SENTENCEPIECE=ON but libsentencepiece (headers and library) was not found")
endif()
# Its trainer (`sanastream train-tokenizer`; Debian's libsentencepiece-dev ships the header and
# libsentencepiece_train), in a module of its own too: on where SentencePiece is and the trainer found.
find_path(SENTENCEPIECE_TRAINER_INCLUDE_DIR sentencepiece_trainer.h)
find_library(SENTENCEPIECE_TRAIN_LIBRARY sentencepiece_train)
set(SANASTREAM_SPM_TRAINER OFF)
if(SANASTREAM_SENTENCEPIECE AND SENTENCEPIECE_TRAINER_INCLUDE_DIR AND SENTENCEPIECE_TRAIN_LIBRARY)
  set(SANASTREAM_SPM_TRAINER ON)
endif()
message(STATUS "sanastream: SentencePiece ${SANASTREAM_SENTENCEPIECE} (trainer ${SANASTREAM_SPM_TRAINER})")

# --- ccache, when present, makes rebuilds (CI, the GPU machine) cheap ------------------------------
find_program(CCACHE_PROGRAM ccache)
if(CCACHE_PROGRAM AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  # Relative paths under the source root and PCH-tolerant settings let build trees share hits.
  set(_ccache env CCACHE_BASEDIR=${PROJECT_SOURCE_DIR}
      CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime ${CCACHE_PROGRAM})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_ccache})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${_ccache})
endif()

# Torch's exported flags (the C++11 ABI define) for every target that includes its headers.
string(REPLACE " " ";" SANASTREAM_TORCH_CXX_FLAGS "${TORCH_CXX_FLAGS}")

# One helper so every layer is declared the same way.
function(sanastream_layer name)
  cmake_parse_arguments(L "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${L_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(${name} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS})
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()
