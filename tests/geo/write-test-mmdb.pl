#!/usr/bin/perl
# Writes the small MaxMind DB (GeoLite2-City layout) the geography tests use, with
# Debian's libmaxmind-db-writer-perl (deploy/install-mmdb-writer installs it).
# Usage: perl tests/geo/write-test-mmdb.pl OUT.mmdb
#
# Networks (documentation and loopback ranges, so reserved-network removal is off):
#   127.0.0.0/8      NZ / Wellington / Wellington   (the tests' TCP peer itself)
#   192.0.2.0/24     FR / Île-de-France / Paris
#   198.51.100.0/24  JP / Tokyo / 東京              (a CJK city name)
#   203.0.113.0/24   US / subdivision without names (iso_code CA) / no city
#   2001:db8:1::/48  BR / São Paulo / São Paulo      (IPv6)
use strict;
use warnings;
use utf8;
use MaxMind::DB::Writer::Tree;

my $out = shift @ARGV or die "usage: $0 OUT.mmdb\n";

my %types = (
    city         => 'map',
    continent    => 'map',
    country      => 'map',
    subdivisions => [ 'array', 'map' ],
    names        => 'map',
    iso_code     => 'utf8_string',
    code         => 'utf8_string',
    en           => 'utf8_string',
    ja           => 'utf8_string',
    fr           => 'utf8_string',
    'pt-BR'      => 'utf8_string',
    geoname_id   => 'uint32',
);

my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version               => 6,
    record_size              => 28,
    database_type            => 'GeoLite2-City',
    languages                => [ 'en', 'fr', 'ja', 'pt-BR' ],
    description              => { en => 'edge analytics test geography (not real data)' },
    remove_reserved_networks => 0,
    map_key_type_callback    => sub { $types{ $_[0] } },
);

sub place {
    my ( $iso, $country, $sub, $city ) = @_;
    my %r = ( country => { iso_code => $iso, names => { en => $country } } );
    $r{subdivisions} = [$sub] if $sub;
    $r{city} = { names => $city } if $city;
    return \%r;
}

$tree->insert_network( '127.0.0.0/8',
    place( 'NZ', 'New Zealand', { iso_code => 'WGN', names => { en => 'Wellington' } },
        { en => 'Wellington' } ) );
$tree->insert_network( '192.0.2.0/24',
    place( 'FR', 'France', { iso_code => 'IDF', names => { en => 'Île-de-France', fr => 'Île-de-France' } },
        { en => 'Paris', fr => 'Paris' } ) );
$tree->insert_network( '198.51.100.0/24',
    place( 'JP', 'Japan', { iso_code => '13', names => { en => 'Tokyo', ja => '東京都' } },
        { en => '東京', ja => '東京' } ) );
$tree->insert_network( '203.0.113.0/24',
    place( 'US', 'United States', { iso_code => 'CA' }, undef ) );
$tree->insert_network( '2001:db8:1::/48',
    place( 'BR', 'Brazil', { iso_code => 'SP', names => { en => 'São Paulo', 'pt-BR' => 'São Paulo' } },
        { en => 'São Paulo', 'pt-BR' => 'São Paulo' } ) );

open my $fh, '>:raw', $out or die "cannot write $out: $!\n";
$tree->write_tree($fh);
close $fh or die "cannot write $out: $!\n";
