module github.com/lavakv/lava

go 1.26
