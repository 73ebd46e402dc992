"""Async jobs: a chat request submitted now and answered later, polled or pushed, with JSON
that is valid against the request's schema whenever the job completes."""
