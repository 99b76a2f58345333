//! Maps shared by every program (names in netmon_common::maps).
