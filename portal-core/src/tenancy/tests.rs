//! Unit and property tests of the tenancy values.
