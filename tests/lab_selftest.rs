mod lab;
#[path = "lab/selftest.rs"]
mod selftest;
