//! Tests of the local runner end to end: real processes, real sandbox.
