
# foldline vote: the votes against an independent numpy oracle, and every refusal.
add_test(NAME vote_methods COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/vote/test_vote.py)
set_tests_properties(vote_methods PROPERTIES ENVIRONMENT "FOLDLINE=$<TARGET_FILE:foldline>")
