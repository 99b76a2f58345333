#![no_std]
// This file exists so the crate has a library target (the programs live in main.rs).
