# Integration tests of `foldline prep` and `foldline inspect` (tests/prep/*.py).
# They need Debian's python3 with numpy, h5py, Pillow and scikit-learn (python3-numpy, python3-h5py,
# python3-pil, python3-sklearn); a python3 earlier on PATH (pyenv, venv) usually lacks them.
find_program(FOLDLINE_TEST_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH REQUIRED)
foreach(t schema pixels folds bad_input idx interrupt corrupt)
  add_test(NAME prep_${t}
           COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/prep/test_${t}.py)
  set_tests_properties(prep_${t} PROPERTIES
                       ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>"
                       LABELS prep
                       TIMEOUT 300)
endforeach()

# foldline vote: the votes against an independent numpy oracle, and every refusal.
add_test(NAME vote_methods COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/vote/test_vote.py)
set_tests_properties(vote_methods PROPERTIES ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>")

# foldline train: end to end on small learnable data files written with h5py, bad input, --fold,
# stopping and resuming; TorchScript backbones written with Debian's python3-torch (skipped without it).
foreach(t train train_errors fold resume torchscript model_data recipe_configs fused)
  add_test(NAME train_${t} COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/train/test_${t}.py)
  set_tests_properties(train_${t} PROPERTIES ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>" TIMEOUT 600
                       SKIP_RETURN_CODE 77)
endforeach()

# foldline train under real mpirun (2 and 3 ranks, oversubscribed): fold-parallel and
# data-parallel runs against one process, spare and uneven groups, the vote, failures.
find_program(FOLDLINE_MPIRUN NAMES mpirun mpiexec HINTS ${MPIEXEC_EXECUTABLE})
if(FOLDLINE_MPIRUN)
  add_test(NAME mpi_train COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/mpi/test_mpi.py)
  set_tests_properties(mpi_train PROPERTIES
                       ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>;MPIRUN=${FOLDLINE_MPIRUN};OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
                       LABELS mpi
                       TIMEOUT 600)
else()
  message(WARNING "mpirun not found: the test mpi_train is left out")
endif()

# The SLURM launch (launch/slurm/) on a real one-node SLURM the test starts and stops itself
# (munged, slurmctld, slurmd as root, in a temporary directory). Skipped (77) when not root,
# without slurm-wlm and munge, or when a SLURM daemon already runs on this machine.
if(FOLDLINE_MPIRUN)
  add_test(NAME slurm_train COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/slurm/test_slurm.py)
  set_tests_properties(slurm_train PROPERTIES
                       ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>"
                       LABELS "mpi;slurm"
                       SKIP_RETURN_CODE 77
                       TIMEOUT 300)
endif()

# The augmentation ops (rotate, elastic, grid distortion, their composition in one remap, flips,
# brightness_contrast, cutout) against OpenCV (python3-opencv) and exact numpy references, through
# tests/augment/augment_dump; skipped (77) without cv2.
add_test(NAME augment_ops
         COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/augment/test_augment.py)
set_tests_properties(augment_ops PROPERTIES ENVIRONMENT "AUGMENT_DUMP=$<TARGET_FILE:augment_dump>"
                     SKIP_RETURN_CODE 77 TIMEOUT 300)

# Write failures (a full disk): every output keeps its previous version and is named in one line.
# A real tmpfs where the test may mount one (root), the FOLDLINE_FAULT_WRITE hook everywhere.
add_test(NAME io_write_faults COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/io/test_write_faults.py)
set_tests_properties(io_write_faults PROPERTIES ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>" TIMEOUT 600)

# The second build: foldline against PyPI's torch 2.x (CUDA built), made by launch/torch2.sh in
# build-torch2/ and tested there with `ctest -L torch2` (launch/test.sh). The Python of its virtual
# environment (torch, timm) is the oracle of the timm backbones; the libtorch 1.13 build beside it
# (FOLDLINE_REFERENCE_BUILD) is what the predictions are compared with and what must refuse a
# module written by torch 2.x. The unit and bridge tests of this file run again there.
set(FOLDLINE_TORCH_PYTHON "" CACHE FILEPATH "Python with torch 2.x and timm (launch/torch2.sh's venv) for the torch2 tests")
set(FOLDLINE_REFERENCE_BUILD "" CACHE PATH "The libtorch 1.13 build folder the torch2 tests compare with")
if(Torch_VERSION VERSION_GREATER_EQUAL 2.0)
  get_property(_tests DIRECTORY PROPERTY TESTS)
  foreach(t IN LISTS _tests)
    if(t MATCHES "^(unit_|torch_torch|train_train$|train_torchscript$)")
      set_property(TEST ${t} APPEND PROPERTY LABELS torch2)
    endif()
  endforeach()
  set(_t2env "FOLDLINE=$<TARGET_FILE:foldline>;SCRIPT_MODEL=$<TARGET_FILE:script_model>"
             "FOLDLINE_TORCH_PYTHON=${FOLDLINE_TORCH_PYTHON}" "FOLDLINE_REFERENCE_BUILD=${FOLDLINE_REFERENCE_BUILD}")
  # version: the torch, CUDA and NCCL this binary links and loads (one libc10, the wheel's NCCL)
  # timm: eva02_tiny_patch14_224 through export_timm.py --weights equals timm's forward
  # refused: libtorch 1.13 refuses a module written by torch 2.x in one line
  # agree: a short CPU training run gives build 1's predictions
  # recipe: configs/sketch_seed.cfg with the real EVA02 architecture (tiny) at 448 and 336 px
  foreach(t version timm refused agree recipe)
    add_test(NAME torch2_${t} COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/torch2/test_${t}.py)
    set_tests_properties(torch2_${t} PROPERTIES ENVIRONMENT "${_t2env}" LABELS torch2 TIMEOUT 600
                         SKIP_RETURN_CODE 77)
  endforeach()
  # The seed's two real backbones (EVA02-L 448, EVA-g 336) with random weights on the CPU: minutes, GBs.
  add_test(NAME torch2_timm_large COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/torch2/test_timm_large.py)
  set_tests_properties(torch2_timm_large PROPERTIES ENVIRONMENT "${_t2env}" LABELS "torch2;slow" TIMEOUT 1800
                       SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endif()
