//! Unit tests of the Experiment machine, one rule each, with Argo's numbers and messages.
