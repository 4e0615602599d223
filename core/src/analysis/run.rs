//! The AnalysisRun machine.
