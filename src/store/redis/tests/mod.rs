//! The Redis store's tests: the record and error mapping, the scripts and their replies, and
//! (with a live Redis) the layout the scripts write.

mod live;
mod records;
mod scripts;
