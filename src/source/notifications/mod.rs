//! Bucket notifications: S3 events delivered to an SQS queue (directly, through SNS, or by
//! EventBridge), received with our own small SQS client ([`sqs`]), read ([`event`]) and
//! sorted into objects to register and messages to delete or leave ([`batch`]). What is
//! done with them (registering jobs, deleting messages once that committed) is the
//! runner's.

pub mod batch;
pub mod event;
pub mod sqs;

pub use batch::{Filter, Sorted, sort};
pub use event::{Notice, ObjectCreated, parse};
pub use sqs::{Message, SqsClient, SqsError};
