#!/usr/bin/perl
# Hash- and string-heavy Perl workload with deterministic output.
# Hash iteration order is randomised per run, so every printed value comes
# from sorted keys or order-free sums.
use strict;
use warnings;

my $MASK = 0xFFFFFFFF;
my $state = 424242;
sub rnd {
    my ($n) = @_;
    $state = ($state * 1103515245 + 12345) & 0x7FFFFFFF;
    return $state % $n;
}
sub fold { my ($acc, $x) = @_; return (($acc * 31) + $x) & $MASK; }
sub fold_str { my ($acc, $s) = @_; return fold($acc, unpack('%32C*', $s) + length $s); }

# Hashes of arrays: build, grow, delete, rebuild.
sub hashes {
    my $acc = 0;
    for my $round (1 .. 6) {
        my %h;
        for my $i (1 .. 25000) {
            push @{ $h{ 'k' . rnd(8000) } }, $i * $round;
        }
        for my $k (keys %h) { delete $h{$k} if @{ $h{$k} } > 4; }
        my %inv;
        while (my ($k, $v) = each %h) { $inv{ scalar @$v }{$k} = [@$v[0 .. $#$v]]; }
        for my $n (sort { $a <=> $b } keys %inv) {
            my @ks = sort keys %{ $inv{$n} };
            $acc = fold($acc, $n * scalar @ks);
            $acc = fold_str($acc, join ',', @ks[0 .. ($#ks < 20 ? $#ks : 20)]);
        }
    }
    return $acc;
}

# Strings: concatenation, substitution, split/join, sprintf, regex captures.
sub strings {
    my $acc = 0;
    for my $round (1 .. 5) {
        my $s = '';
        $s .= chr(97 + rnd(26)) x (1 + rnd(10)) . ' ' for 1 .. 30000;
        (my $t = $s) =~ s/([aeiou]+)/uc($1) . length($1)/ge;
        my @words = split ' ', $t;
        my %count;
        $count{ lc substr($_, 0, 3) }++ for @words;
        my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 9];
        $acc = fold_str($acc, join '|', map { sprintf '%s=%d', $_, $count{$_} } @top);
        my $joined = join '', reverse @words;
        my $n = () = $joined =~ /(\d+)/g;
        $acc = fold($acc, length($joined) + $n + $round);
    }
    return $acc;
}

# Nested records with references and cycles broken by hand.
sub records {
    my $acc = 0;
    for my $round (1 .. 4) {
        my @recs = map {
            +{
                id    => $_,
                name  => sprintf('rec-%06d', $_),
                tags  => [ map { 't' . rnd(40) } 0 .. rnd(5) ],
                attrs => { map { ("a$_" => rnd(1000)) } 0 .. rnd(6) },
            }
        } 1 .. 15000;
        $_->{peer} = $recs[ rnd(scalar @recs) ] for @recs;
        my %by_tag;
        for my $r (@recs) { push @{ $by_tag{$_} }, $r->{id} for @{ $r->{tags} }; }
        $acc = fold($acc, scalar(@{ $by_tag{$_} }) * length $_) for sort keys %by_tag;
        my $sum = 0;
        for my $r (@recs) { $sum += $_ for values %{ $r->{attrs} }; $sum += $r->{peer}{id}; }
        $acc = fold($acc, $sum & $MASK);
        delete $_->{peer} for @recs;
    }
    return $acc;
}

my $overall = 0;
for my $phase ([ hashes => \&hashes ], [ strings => \&strings ], [ records => \&records ]) {
    my $result = $phase->[1]->();
    $overall = fold($overall, $result);
    printf "%s: %08x\n", $phase->[0], $result;
}
printf "overall: %08x\n", $overall;
