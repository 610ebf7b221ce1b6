"""Thin wrappers over the Linux interfaces the supervisor uses.

Nothing here makes a decision: these modules turn ptrace, seccomp and /proc
into small typed calls, and the supervisor and the model decide.
"""
