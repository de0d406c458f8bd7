# Integration tests of `foldline prep` and `foldline inspect` (tests/prep/*.py).
# They need Debian's python3 with numpy, h5py, Pillow and scikit-learn (python3-numpy, python3-h5py,
# python3-pil, python3-sklearn); a python3 earlier on PATH (pyenv, venv) usually lacks them. Every
# Python test runs under ${FOLDLINE_TEST_PYTHON} (found in CMakeLists.txt, /usr/bin/python3 by default).
foreach(t schema pixels folds bad_input idx interrupt corrupt)
  add_test(NAME prep_${t}
           COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/prep/test_${t}.py)
  set_tests_properties(prep_${t} PROPERTIES
                       ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>"
                       LABELS prep
                       TIMEOUT 300)
endforeach()

# The folders' include direction (launch -> config -> trainer -> {vote, dist} -> dataset -> base), read
# from every #include of the sources: a file that includes against it fails, named with its line.
add_test(NAME layout COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tools/check_layout.py
         ${CMAKE_CURRENT_SOURCE_DIR})
set_tests_properties(layout PROPERTIES LABELS layout TIMEOUT 60)

# Every tracked C and C++ file as .clang-format says (clang-format 14); --fix formats them.
add_test(NAME format COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tools/check_format.sh)
set_tests_properties(format PROPERTIES LABELS layout TIMEOUT 120)

# foldline vote: the votes against an independent numpy oracle, and every refusal.
add_test(NAME vote_methods COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/vote/test_vote.py)
set_tests_properties(vote_methods PROPERTIES ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>")
# report.html: well-formed, every number drawn against numpy, rendered by headless Chromium (its
# screenshots go to $FOLDLINE_ARTIFACTS, default the build folder's artifacts/), a 500-class run under 5 MB;
# --fit-weights: greedy selection, the nested score and temperatures against a numpy re-implementation.
foreach(t report_html fit_weights)
  add_test(NAME vote_${t} COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/vote/test_${t}.py)
  set_tests_properties(vote_${t} PROPERTIES TIMEOUT 600
                       ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>;FOLDLINE_ARTIFACTS=${CMAKE_BINARY_DIR}/artifacts")
endforeach()

# foldline predict and export: a run trained on a Pillow-written competition layout predicts its test
# images as vote did (submission and preds.h5), alone and under mpirun, through every input form; bad
# input and outputs; the exported TorchScript module in plain PyTorch (1.13; 2.x from the venv
# ${XDG_CACHE_HOME:-~/.cache}/foldline/venv-torch2 when it exists) against predict.
add_test(NAME predict_export COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/predict/test_predict.py)
set_tests_properties(predict_export PROPERTIES ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>" LABELS predict
                     TIMEOUT 900)

# foldline train: end to end on small learnable data files written with h5py, bad input, --fold,
# run locks (two trainers of one fold, a killed holder, another host by unshare --uts, --restart),
# stopping and resuming; TorchScript backbones written with Debian's python3-torch (skipped without it);
# progress lines (a pipe, a pty, prep); TensorBoard scalars read back by the PyPI tensorboard in
# ${XDG_CACHE_HOME:-~/.cache}/foldline/venv-tb (skipped only when PyPI is unreachable).
foreach(t train train_errors hostile fold resume torchscript model_data recipe_configs fused locks progress tfevents precision
          module)
  add_test(NAME train_${t} COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/train/test_${t}.py)
  set_tests_properties(train_${t} PROPERTIES ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>" TIMEOUT 600
                       SKIP_RETURN_CODE 77)
endforeach()

# foldline status: done, running, stopped, killed, failed and pending jobs of real runs; it writes nothing.
add_test(NAME status_jobs COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/status/test_status.py)
set_tests_properties(status_jobs PROPERTIES ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>" TIMEOUT 600)

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
                       RESOURCE_LOCK slurm
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

# Multi-host tests on test hosts made on this machine (tests/hosts/testhosts.py): network
# namespaces on a bridge, each with its own address, hostname and /etc/hosts; Open MPI across them
# through an rsh agent that enters the namespaces, and a SLURM with one slurmd per host. The harness
# itself (mpicc's tiny MPI program across 2 hosts, sbatch -N 2, clean-up), then foldline train
# across 2 hosts: fold-parallel, data-parallel, train.sbatch, the array form and preemption.
# Skipped (77) when not root, or without ip/unshare, mpirun, slurm-wlm or munge.
# hosts_faults: a cut link, a killed host, a stopped rank and a blip, each timed (about 2 minutes).
# The tests that start a SLURM hold the lock "slurm": slurm_train refuses to run beside another
# SLURM's daemons, and the test hosts' slurmd are such daemons.
if(FOLDLINE_MPIRUN)
  foreach(t harness train faults)
    add_test(NAME hosts_${t} COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/hosts/test_${t}.py)
    set_tests_properties(hosts_${t} PROPERTIES
                         ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>"
                         LABELS hosts
                         SKIP_RETURN_CODE 77
                         TIMEOUT 600)
  endforeach()
  set_tests_properties(hosts_harness hosts_train PROPERTIES RESOURCE_LOCK slurm)
endif()

# The second build: foldline against PyPI's torch 2.x (CUDA built), made by tools/torch2.sh in
# build-torch2/ and tested there with `ctest -L torch2` (tools/test.sh). The Python of its virtual
# environment (torch, timm) is the oracle of the timm backbones; the libtorch 1.13 build beside it
# (FOLDLINE_REFERENCE_BUILD) is what the predictions are compared with and what must refuse a
# module written by torch 2.x. The unit and bridge tests of this file run again there.
set(FOLDLINE_TORCH_PYTHON "" CACHE FILEPATH "Python with torch 2.x and timm (tools/torch2.sh's venv) for the torch2 tests")
set(FOLDLINE_REFERENCE_BUILD "" CACHE PATH "The libtorch 1.13 build folder the torch2 tests compare with")
if(Torch_VERSION VERSION_GREATER_EQUAL 2.0)
  get_property(_tests DIRECTORY PROPERTY TESTS)
  foreach(t IN LISTS _tests)
    # The unit and bridge tests, and TorchScript modules of Debian's torch 1.13 loaded by this libtorch;
    # torch2_agree below is its short training run (train_train and the torchvision oracle stay with
    # build 1, to keep CI within its time).
    if(t MATCHES "^(unit_|torch_torchscript$)")
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
  # tests/gpu/seed_scale.sh's dry run (SEED_SCALE_DRY=1): the H200 script's whole flow on the CPU, tiny sizes;
  # two minutes and more on a 2-core machine (two EVA exports, six model loads), hence slow.
  add_test(NAME torch2_seed_scale_dry COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/torch2/test_seed_scale_dry.py)
  set_tests_properties(torch2_seed_scale_dry PROPERTIES ENVIRONMENT "${_t2env}" LABELS "torch2;slow" TIMEOUT 900
                       SKIP_RETURN_CODE 77)
  # The seed's two real backbones (EVA02-L 448, EVA-g 336) with random weights on the CPU: minutes, GBs.
  add_test(NAME torch2_timm_large COMMAND ${FOLDLINE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tests/torch2/test_timm_large.py)
  set_tests_properties(torch2_timm_large PROPERTIES ENVIRONMENT "${_t2env}" LABELS "torch2;slow" TIMEOUT 1800
                       SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endif()

# The Python tests' library (tests/lib/fltest) is found through PYTHONPATH, for every test above.
# Each test gets Open MPI session folders of its own (orte_tmpdir_base): Open MPI 4.1 processes that
# start and end at the same moment share /tmp/ompi.HOST.UID, and one ending removes it while another
# creates its folder inside ("A call to mkdir was unable to create the desired directory"). The
# folders are short (PMIx puts sockets there) and derive from the build folder, so two builds differ.
string(MD5 _fl_build_hash "${CMAKE_BINARY_DIR}")
string(SUBSTRING "${_fl_build_hash}" 0 8 _fl_build_hash)
get_property(_fl_tests DIRECTORY PROPERTY TESTS)
set(_fl_i 0)
foreach(_t IN LISTS _fl_tests)
  set(_fl_ompi "/tmp/fl-ompi-${_fl_build_hash}/${_fl_i}")
  file(MAKE_DIRECTORY "${_fl_ompi}")
  set_property(TEST ${_t} APPEND PROPERTY ENVIRONMENT "PYTHONPATH=${CMAKE_CURRENT_SOURCE_DIR}/tests/lib"
                                                      "OMPI_MCA_orte_tmpdir_base=${_fl_ompi}")
  math(EXPR _fl_i "${_fl_i} + 1")
endforeach()
