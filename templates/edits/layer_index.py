# Replaces `i` in the layer-index attachment and in the save list: layers after a backbone shift by 4.
i + 4 if backbone else i
