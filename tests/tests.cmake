# Integration tests of `foldline prep` and `foldline inspect` (tests/prep/*.py).
# They need Debian's python3 with numpy, h5py, Pillow and scikit-learn (python3-numpy, python3-h5py,
# python3-pil, python3-sklearn); a python3 earlier on PATH (pyenv, venv) usually lacks them.
find_program(FOLDLINE_TEST_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH REQUIRED)
foreach(t schema pixels folds bad_input idx interrupt)
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

# foldline train: end to end on small learnable data files written with h5py, and bad input.
foreach(t train train_errors)
  add_test(NAME train_${t} COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/train/test_${t}.py)
  set_tests_properties(train_${t} PROPERTIES ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>" TIMEOUT 600)
endforeach()
