//! The service broker against the real servers of this machine
//! (PostgreSQL, MariaDB, Redis, RabbitMQ with its management plugin: see
//! scripts/test.sh). Every test has its own broker (port 0, temp state)
//! and its own instance ids, so they run in parallel.

mod amqp;
mod api;
mod common;
mod mysql;
mod postgres;
mod rabbitmq;
mod redis;
