//! Socket and process lifecycle: TCP state changes, socket release, fork and exit.
