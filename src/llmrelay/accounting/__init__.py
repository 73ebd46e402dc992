"""What each request used and cost, recorded for the usage reports, the budgets and the
request inspector."""
