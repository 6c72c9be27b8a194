#!/bin/sh
echo "hello from the minimal bundle: $*"
