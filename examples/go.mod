module github.com/lavakv/lava/examples

go 1.26

replace github.com/lavakv/lava => ../
