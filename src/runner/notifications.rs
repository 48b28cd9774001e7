//! `run --follow --notifications sqs=QUEUE_URL`: a task that receives bucket notifications
//! continuously and records the objects they report as jobs, with the same SQL as a
//! listing (`jobs::discover`: a version already known is a no-op, a new ETag of a COMPLETED
//! object is a replaced object). A batch's messages are deleted only once the transaction
//! that recorded its objects committed; while it runs longer than half the queue's
//! visibility timeout, the messages are kept invisible (ChangeMessageVisibilityBatch). A
//! worker killed at any point loses nothing: a message it did not delete is received again
//! after its visibility timeout, and recording it again is a no-op. When a batch recorded
//! objects, the passes are woken (`wake`) to take them at once. Each poll that finished
//! (with or without messages) tells readiness the loop is moving.

use std::sync::Arc;
use std::time::Duration;

use globset::GlobSet;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::cancel::Cancel;
use crate::events;
use crate::health::{self, Progress};
use crate::jobs;
use crate::source::notifications::{Filter, Message, SqsClient, sort, sqs};

/// Receives and records notifications until the stop.
pub struct Consumer {
    pub client: Arc<SqsClient>,
    pub pool: PgPool,
    pub bucket: String,
    pub prefix: String,
    pub include: GlobSet,
    /// COMPLETED objects with a new version are ingested again (`--on-change reingest`).
    pub replace_completed: bool,
    /// Long polling: how long a receive waits for a message (at most 20 s).
    pub wait: Duration,
    /// The queue's visibility timeout: received messages stay invisible this long.
    pub visibility: Duration,
    /// Woken when a batch recorded objects.
    pub wake: Arc<Notify>,
    pub cancel: Cancel,
}

/// Backoff after a failed receive or batch: doubling up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Consumer {
    /// Receives, records and deletes, batch after batch, until the stop. Failures (the
    /// queue or the database away) are logged and tried again after a backoff: the
    /// messages of a failed batch were not deleted and come back.
    pub async fn run(self) {
        tracing::info!(queue = %self.client.queue_url(), visibility_secs = self.visibility.as_secs(), "receiving bucket notifications");
        let mut backoff = Duration::from_secs(1);
        while !self.cancel.is_cancelled() {
            let received = tokio::select! {
                _ = self.cancel.cancelled() => return,
                received = self.client.receive(sqs::MAX_BATCH, self.wait) => received,
            };
            let result = match received {
                Ok(messages) if messages.is_empty() => Ok(()),
                Ok(messages) => self.batch(&messages).await,
                Err(e) => Err(anyhow::Error::new(e)),
            };
            match result {
                Ok(()) => {
                    health::progressed(Progress::NotificationPoll);
                    backoff = Duration::from_secs(1);
                }
                Err(error) => {
                    tracing::warn!(queue = %self.client.queue_url(), error = %format!("{error:#}"), retry_in_secs = backoff.as_secs(), "notifications: receiving or recording failed; trying again");
                    if self.cancel.sleep(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One batch: sorted, its objects recorded, then its messages deleted (except the
    /// unreadable ones, left for the dead-letter queue).
    async fn batch(&self, messages: &[Message]) -> anyhow::Result<()> {
        let filter = Filter {
            bucket: &self.bucket,
            prefix: &self.prefix,
            include: &self.include,
        };
        let sorted = sort(messages, &filter);
        for (message, cause) in &sorted.unreadable {
            events::notification_unreadable(&message.id, cause);
        }
        let delete = sorted.to_delete();
        if !sorted.objects.is_empty() {
            let found = self.record(&sorted.objects, &delete).await?;
            tracing::info!(
                objects = sorted.objects.len(),
                new_objects = found.new,
                replaced_objects = found.replaced,
                messages = sorted.registered.len(),
                "notifications recorded"
            );
            // Even a known object may be claimable (PENDING): the passes look.
            self.wake.notify_one();
        }
        for message in &sorted.registered {
            events::notification_registered(&message.id);
        }
        for (message, why) in &sorted.ignored {
            events::notification_ignored(&message.id, why);
        }
        if !delete.is_empty() {
            let failed = self.client.delete(&delete).await?;
            for (id, why) in failed {
                // Received again later; recording it again is a no-op.
                tracing::warn!(message_id = %id, %why, "notification not deleted; it will be received again");
            }
        }
        Ok(())
    }

    /// Records `objects` (one statement, one transaction), keeping `messages` invisible
    /// while it takes longer than half their visibility timeout.
    async fn record(
        &self,
        objects: &[jobs::Listed],
        messages: &[&Message],
    ) -> anyhow::Result<jobs::Discovered> {
        let record = jobs::discover(&self.pool, &self.bucket, objects, self.replace_completed);
        tokio::pin!(record);
        let every = (self.visibility / 2).max(Duration::from_secs(1));
        let mut extend = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                recorded = &mut record => {
                    return recorded.map_err(|e| anyhow::Error::new(e).context("cannot record notified objects"));
                }
                _ = extend.tick() => {
                    match self.client.extend(messages, self.visibility).await {
                        Ok(failed) => {
                            for (id, why) in failed {
                                tracing::warn!(message_id = %id, %why, "cannot keep a notification invisible; it may be received again");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot keep notifications invisible; they may be received again"),
                    }
                }
            }
        }
    }
}
