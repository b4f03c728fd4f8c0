//! Sans-IO engine.
