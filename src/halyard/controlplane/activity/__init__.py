"""The activity log: what was written, deleted or done to resources, by whom and how it ended (Azure Monitor's
``eventtypes/management/values``)."""
