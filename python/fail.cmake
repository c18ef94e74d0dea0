# Fails with the sentence passed as -DMESSAGE=...: the stand-in for python_tests when no suitable
# Python interpreter was found at configure time.
message(FATAL_ERROR "${MESSAGE}")
