"""The console: agents, supervisors and provider agencies in a browser, under /console."""
